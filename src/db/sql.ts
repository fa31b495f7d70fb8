import type { Pool, PoolClient } from 'pg';
import type { DataSource } from 'typeorm';

/** Something that runs parameterised SQL: the pool or a client in a transaction. */
export interface Queryable {
  query<R = any>(text: string, params?: unknown[]): Promise<R[]>;
}

const guardedPools = new WeakSet<Pool>();
const guardedClients = new WeakSet<PoolClient>();
const ignore = (): void => undefined;

/**
 * A pooled client loses its 'error' listener while checked out (pg-pool only
 * listens while it is idle), so a server that ends the connection between two
 * queries of its holder (a Postgres restart: 57P01) raised an unheard 'error'
 * that crashed the process. Every client handed out by this pool keeps a
 * listener of its own; the holder's next query fails and it releases the
 * client as broken, as it does for any failed query.
 */
export function guardCheckedOutClients(pool: Pool): void {
  if (guardedPools.has(pool)) return;
  guardedPools.add(pool);
  const guard = (client: PoolClient) => {
    if (guardedClients.has(client)) return;
    guardedClients.add(client);
    client.on('error', ignore);
  };
  pool.on('connect', guard);
  pool.on('acquire', guard);
}

/**
 * Parameterised SQL over the DataSource's own pg pool: the hot path skips
 * TypeORM's query runners and entity hydration, as ARCHITECTURE.md asks.
 */
export class Sql implements Queryable {
  /**
   * @param preparedStatements whether hot statements run as named prepared
   * statements (default true). Off behind a pooler that cannot keep them
   * (PgBouncer in transaction mode before 1.21 `max_prepared_statements`).
   */
  constructor(readonly pool: Pool, readonly preparedStatements = true) {}

  /** The pg pool inside a TypeORM DataSource (postgres driver). */
  static fromDataSource(ds: DataSource, preparedStatements = true): Sql {
    const pool = (ds.driver as unknown as { master: Pool }).master;
    if (!pool) throw new Error('DataSource is not initialised');
    guardCheckedOutClients(pool);
    return new Sql(pool, preparedStatements);
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
 * Inside a transaction (no pool), or with prepared statements turned off
 * (`DROVER_PREPARED_STATEMENTS=off`), it runs as plain parameterised SQL.
 */
export async function hotQuery(q: Queryable, name: string, text: string, params: unknown[]): Promise<any[]> {
  const { pool, preparedStatements } = q as { pool?: Pool; preparedStatements?: boolean };
  if (pool && preparedStatements !== false) return (await pool.query({ name, text, values: params })).rows;
  return q.query(text, params);
}
