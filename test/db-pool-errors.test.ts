import { Client, Pool } from 'pg';
import { guardCheckedOutClients, Sql } from '../src/db/sql';
import { eventually } from './helpers/engine';
import { createTestDatabase } from './helpers/env';

// A Postgres restart ends every connection with a FATAL 57P01. A pooled client
// that is checked out but between queries has no listener of pg-pool's, and an
// unheard 'error' event kills the process (the API server died this way in a
// chaos postgres-restart run). The guard keeps the process up; the holder's
// next query fails and the client is released as broken.
describe('pooled clients cut while checked out', () => {
  let pool: Pool;
  let admin: Client;

  beforeAll(async () => {
    const url = await createTestDatabase();
    pool = new Pool({ connectionString: url, max: 2 });
    pool.on('error', () => undefined);
    guardCheckedOutClients(pool);
    admin = new Client({ connectionString: url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
    await pool.end();
  });

  it('a client whose server ends it between two queries fails its next query; the process and the pool carry on', async () => {
    const uncaught: Error[] = [];
    const onUncaught = (error: Error) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const client = await pool.connect();
      const [{ pid }] = (await client.query('SELECT pg_backend_pid() AS pid')).rows;
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await eventually(async () => (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n === 0,
        10_000, 'the backend to end');
      await new Promise((r) => setTimeout(r, 200)); // its FATAL message reaches the client
      await expect(client.query('SELECT 1')).rejects.toThrow();
      client.release(true);
      expect(uncaught).toEqual([]);
      expect(await new Sql(pool).query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
