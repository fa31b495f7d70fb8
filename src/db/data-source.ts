import 'reflect-metadata';
import { runMigrations as runBullmqMigrations } from 'bullmq';
import { Client } from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { ENTITIES } from '../entities';
import { MIGRATIONS } from '../migrations';

/** Options of drover's Postgres connection pool. */
export interface DatabaseOptions {
  /** Postgres connection string. */
  url: string;
  /** Pool size. Default 10. */
  poolSize?: number;
  /** `application_name` shown in pg_stat_activity. Default `drover`. */
  applicationName?: string;
  /** The user's own TypeORM entities, beside drover's (for `ctx.transaction`). Default none. */
  entities?: NonNullable<DataSourceOptions['entities']>;
}

/** The TypeORM DataSource options for drover (migrations, never `synchronize`). */
export function dataSourceOptions(options: DatabaseOptions): DataSourceOptions {
  return {
    type: 'postgres',
    url: options.url,
    entities: [...ENTITIES, ...((options.entities ?? []) as never[])],
    migrations: MIGRATIONS,
    migrationsTableName: 'drover_migrations',
    synchronize: false,
    logging: false,
    poolSize: options.poolSize ?? 10,
    applicationName: options.applicationName ?? 'drover',
    extra: { connectionTimeoutMillis: 10_000 },
  };
}

/** Creates (does not initialise) a DataSource. */
export function createDataSource(options: DatabaseOptions): DataSource {
  return new DataSource(dataSourceOptions(options));
}

// Arbitrary constant: serialises concurrent `migrate` calls across processes.
const MIGRATION_LOCK_KEY = 7_312_004_511;

/**
 * Applies drover's migrations and, when the queues live in Postgres, BullMQ's.
 * Safe to call concurrently from many processes (an advisory lock serialises
 * them) and idempotent.
 * @returns the names of the migrations applied by this call.
 */
export async function migrate(url: string, options: { queueBackend: 'redis' | 'postgres' }): Promise<string[]> {
  const lock = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const ds = createDataSource({ url, poolSize: 1, applicationName: 'drover-migrate' });
    await ds.initialize();
    try {
      const applied = await ds.runMigrations({ transaction: 'each' });
      if (options.queueBackend === 'postgres') await runBullmqMigrations(lock);
      return applied.map((m) => m.name);
    } finally {
      await ds.destroy();
      await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await lock.end().catch(() => undefined);
  }
}
