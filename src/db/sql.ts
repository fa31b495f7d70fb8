import type { Pool, PoolClient } from 'pg';
import type { DataSource } from 'typeorm';

/** Something that runs parameterised SQL: the pool or a client in a transaction. */
export interface Queryable {
  query<R = any>(text: string, params?: unknown[]): Promise<R[]>;
}

/**
 * Parameterised SQL over the DataSource's own pg pool: the hot path skips
 * TypeORM's query runners and entity hydration, as ARCHITECTURE.md asks.
 */
export class Sql implements Queryable {
  constructor(readonly pool: Pool) {}

  /** The pg pool inside a TypeORM DataSource (postgres driver). */
  static fromDataSource(ds: DataSource): Sql {
    const pool = (ds.driver as unknown as { master: Pool }).master;
    if (!pool) throw new Error('DataSource is not initialised');
    return new Sql(pool);
  }

  async query<R = any>(text: string, params?: unknown[]): Promise<R[]> {
    const result = await this.pool.query(text, params as unknown[]);
    return result.rows as R[];
  }

  /** Runs `work` in a transaction (READ COMMITTED), rolling back on any error. */
  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const client: PoolClient = await this.pool.connect();
    let broken = false;
    // A checked-out client that loses its server between queries emits 'error';
    // unheard, that would crash the process. The failing query reports it instead.
    const onError = () => { broken = true; };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const tx: Queryable = { query: async (text, params) => (await client.query(text, params as unknown[])).rows };
      const result = await work(tx);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => { broken = true; });
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }
}

/**
 * Runs a hot-path statement as a named prepared statement when `q` is the
 * pool: each connection parses and plans it once, not on every step (the
 * parse and plan of these CTEs cost as much Postgres CPU as running them).
 * Inside a transaction (no pool) it runs as plain parameterised SQL.
 */
export async function hotQuery(q: Queryable, name: string, text: string, params: unknown[]): Promise<any[]> {
  const pool = (q as { pool?: Pool }).pool;
  if (pool) return (await pool.query({ name, text, values: params })).rows;
  return q.query(text, params);
}
