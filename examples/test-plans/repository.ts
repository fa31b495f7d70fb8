/**
 * The seed's storage port, kept small: a generic repository over entities
 * with an `id`, and its Postgres adapter on a TypeORM `EntityManager` (the
 * data source's, or a step's `ctx.transaction` manager, so writes commit with
 * the step).
 */
import type { EntityManager, EntitySchema, FindOptionsWhere, ObjectLiteral } from 'typeorm';

/** Equality filters on an entity's fields. */
export type Filter<T> = Partial<T>;

/** The port: what the example's code needs from storage, nothing about how it is stored. */
export interface Repository<T extends { id: string }> {
  create(data: Omit<T, 'id'> | Partial<T>): Promise<T>;
  findById(id: string): Promise<T | null>;
  /** Rows matching `filter`, ordered by `orderBy` (ascending) when given. */
  findMany(filter?: Filter<T>, orderBy?: keyof T & string): Promise<T[]>;
  /** Updates and returns the row; throws `RecordNotFoundError` when there is none. */
  update(id: string, data: Partial<Omit<T, 'id'>>): Promise<T>;
  count(filter?: Filter<T>): Promise<number>;
}

/** An update or lookup of an id that has no row. */
export class RecordNotFoundError extends Error {
  readonly code = 'not_found';
  constructor(entity: string, id: string) {
    super(`${entity} ${id} not found`);
    this.name = 'RecordNotFoundError';
  }
}

/** The Postgres adapter of `Repository<T>` for one entity schema. */
export function typeormRepository<T extends { id: string } & ObjectLiteral>(manager: EntityManager, entity: EntitySchema<T>): Repository<T> {
  const repo = manager.getRepository<T>(entity);
  const where = (filter?: Filter<T>) => (filter ?? {}) as FindOptionsWhere<T>;
  return {
    async create(data) {
      return repo.save(repo.create(data as T));
    },
    findById(id) {
      return repo.findOneBy({ id } as FindOptionsWhere<T>);
    },
    findMany(filter, orderBy) {
      return repo.find({ where: where(filter), ...(orderBy ? { order: { [orderBy]: 'ASC' } as never } : {}) });
    },
    async update(id, data) {
      const found = await repo.findOneBy({ id } as FindOptionsWhere<T>);
      if (!found) throw new RecordNotFoundError(entity.options.name, id);
      return repo.save(repo.merge(found, data as never));
    },
    count(filter) {
      return repo.countBy(where(filter));
    },
  };
}
