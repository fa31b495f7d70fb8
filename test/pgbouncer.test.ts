import { Client, Pool } from 'pg';
import { RunChangeFeed, type RunChange } from '../src/dashboard/run-changes';
import { Drover } from '../src/drover';
import { Sql } from '../src/db/sql';
import { Reconciler } from '../src/maintenance/reconciler';
import { Dispatcher } from '../src/queue/dispatcher';
import { QueueBackend } from '../src/queue/queue-backend';
import { StepStore } from '../src/steps/step-store';
import { silentLogger } from '../src/telemetry/logger';
import type { DroverWorker } from '../src/worker/worker';
import { PgBouncer } from './harness/pgbouncer';
import { FAST_WORKER, eventually } from './helpers/engine';
import { createTestDatabase, describeEachBackend, redisUrlFor, testServerUrl, uniqueNamespace } from './helpers/env';
import { flaky } from './helpers/fixtures';

// Debian's pgbouncer in transaction pooling in front of the test Postgres.
jest.setTimeout(90_000);

const diamond = {
  name: 'diamond',
  steps: [
    { name: 'a', processor: 'echo' },
    { name: 'b', processor: 'flaky', dependsOn: ['a'], attempts: 3, backoff: { type: 'fixed' as const, delayMs: 50 } },
    { name: 'c', processor: 'echo', dependsOn: ['a'] },
    { name: 'd', processor: 'echo', dependsOn: ['b', 'c'] },
  ],
};
const processors = { echo: async (ctx: { step: { name: string } }) => ({ step: ctx.step.name }), flaky: flaky(1) };

/** PgBouncer's own count of transactions it carried for a database (its admin console). */
async function pooledTransactions(bouncer: PgBouncer, database: string): Promise<number> {
  const admin = new Client({ connectionString: bouncer.url('pgbouncer') });
  await admin.connect();
  try {
    // The admin console speaks the simple query protocol only.
    const { rows } = await admin.query('SHOW STATS');
    return Number(rows.find((r) => r.database === database)?.total_xact_count ?? 0);
  } finally {
    await admin.end();
  }
}

/** Sessions of a database by application name, as Postgres sees them. */
async function sessions(database: string): Promise<Array<{ application_name: string; client_port: number }>> {
  const admin = new Client({ connectionString: testServerUrl() });
  await admin.connect();
  try {
    return (await admin.query(`SELECT application_name, client_port FROM pg_stat_activity WHERE datname = $1`, [database])).rows;
  } finally {
    await admin.end();
  }
}

let bouncer: PgBouncer;
beforeAll(async () => {
  bouncer = new PgBouncer({ serverUrl: testServerUrl(), poolSize: 8 });
  await bouncer.start();
});
afterAll(async () => {
  await bouncer?.stop();
});

describeEachBackend('drover through PgBouncer (transaction pooling, DATABASE_DIRECT_URL for sessions)', (backend) => {
  let drover: Drover;
  let database: string;
  let directUrl: string;
  let pooledUrl: string;
  const workers: DroverWorker[] = [];

  beforeEach(async () => {
    directUrl = await createTestDatabase();
    database = new URL(directUrl).pathname.slice(1);
    pooledUrl = bouncer.url(database);
    drover = await Drover.connect({
      databaseUrl: pooledUrl, databaseDirectUrl: directUrl, preparedStatements: false, redisUrl: redisUrlFor(backend), namespace: uniqueNamespace(),
    });
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await drover.close();
  });

  it('runs DAGs end to end (retries included) with every run and step write going through the pooler', async () => {
    for (let i = 0; i < 2; i++) {
      const worker = drover.createWorker({ ...FAST_WORKER, workflows: [diamond], processors, concurrency: 4 });
      workers.push(worker);
      await worker.run();
    }
    const before = await pooledTransactions(bouncer, database);
    const ids = await Promise.all(Array.from({ length: 20 }, () => drover.createRun({ workflow: 'diamond', input: {} }).then((r) => r.id)));
    const runs = await Promise.all(ids.map((id) => drover.waitForRun(id, { timeoutMs: 40_000 })));
    expect(runs.map((r) => r.status)).toEqual(ids.map(() => 'succeeded'));
    expect(runs[0].steps.map((s) => [s.name, s.attempts])).toEqual([['a', 1], ['b', 2], ['c', 1], ['d', 1]]);
    expect(runs[0].output).toEqual({ d: { step: 'd' } });
    // 20 runs × (create + 4 steps + retries + finish): at least a few hundred transactions passed through PgBouncer.
    expect((await pooledTransactions(bouncer, database)) - before).toBeGreaterThan(100);
    // Postgres sees drover's pools only as PgBouncer's server connections (no client port of drover's own
    // besides the direct sessions: BullMQ's Postgres backend, when in use, and none other).
    const direct = (await sessions(database)).filter((s) => s.application_name.startsWith('drover-queue'));
    expect(direct.length > 0).toBe(backend === 'postgres');
  });

  it('rings the dashboard\'s doorbell (LISTEN on the direct URL) for a run that goes through the pooler', async () => {
    const feed = new RunChangeFeed({ createClient: () => drover.createListenClient(), readChanges: (afterId) => drover.runsChangedSince(afterId) });
    const heard: RunChange[] = [];
    feed.subscribe((c) => heard.push(c));
    try {
      await eventually(() => feed.ready, 10_000, 'the LISTEN connection');
      expect((await sessions(database)).filter((s) => s.application_name === 'drover-listen')).toHaveLength(1);
      const worker = drover.createWorker({ ...FAST_WORKER, workflows: [diamond], processors });
      workers.push(worker);
      await worker.run();
      const run = await drover.createRun({ workflow: 'diamond', input: {} });
      await eventually(() => heard.some((c) => 'runIds' in c && c.runIds.includes(run.id)), 10_000, 'a notification naming the run');
      expect((await drover.waitForRun(run.id, { timeoutMs: 20_000 })).status).toBe('succeeded');
    } finally {
      await feed.close();
    }
  });
});

describe('the reconciler\'s leader lock through PgBouncer', () => {
  it('is held by one pass at a time (a transaction-scoped advisory lock, which transaction pooling keeps)', async () => {
    const directUrl = await createTestDatabase();
    const pooledUrl = bouncer.url(new URL(directUrl).pathname.slice(1));
    const drover = await Drover.connect({ databaseUrl: pooledUrl, databaseDirectUrl: directUrl, preparedStatements: false, redisUrl: redisUrlFor('redis'), namespace: uniqueNamespace() });
    const pool = new Pool({ connectionString: pooledUrl, max: 3 });
    const sql = new Sql(pool, false);
    const backend = new QueueBackend({ databaseUrl: directUrl, redisUrl: redisUrlFor('redis'), namespace: uniqueNamespace() });
    const reconciler = () => new Reconciler({
      sql, backend, store: new StepStore(sql), dispatcher: new Dispatcher(backend, silentLogger), logger: silentLogger, metrics: drover.metrics, queues: ['default'],
    });
    const holder = await pool.connect();
    try {
      // Another process's pass in progress, through the pooler: its transaction holds the lock on one server connection.
      await holder.query('BEGIN');
      const [{ locked }] = (await holder.query('SELECT pg_try_advisory_xact_lock(7312004512) AS locked')).rows;
      expect(locked).toBe(true);
      const [a, b] = await Promise.all([reconciler().reconcile(), reconciler().reconcile()]);
      expect([a.ran, b.ran]).toEqual([false, false]);
      await holder.query('COMMIT');
      // Released at commit: the next pass takes it.
      expect((await reconciler().reconcile()).ran).toBe(true);
    } finally {
      holder.release();
      await backend.close();
      await pool.end();
      await drover.close();
    }
  });
});

describe('retention through PgBouncer', () => {
  it('holds its session lock on a direct session (DATABASE_DIRECT_URL), so passes exclude each other and leave no lock behind', async () => {
    const directUrl = await createTestDatabase();
    const database = new URL(directUrl).pathname.slice(1);
    const drover = await Drover.connect({ databaseUrl: bouncer.url(database), databaseDirectUrl: directUrl, preparedStatements: false, redisUrl: redisUrlFor('redis'), namespace: uniqueNamespace() });
    const other = new Client({ connectionString: directUrl });
    await other.connect();
    const advisoryLocks = async () => Number((await other.query(
      `SELECT count(*) AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = $1`, [database])).rows[0].n);
    try {
      // Another process's pass holds the lock: this one does not run.
      await other.query('SELECT pg_advisory_lock(7312004513)');
      expect((await drover.prune()).ran).toBe(false);
      await other.query('SELECT pg_advisory_unlock(7312004513)');
      for (let i = 0; i < 5; i++) expect((await drover.prune({ retentionDays: 1 })).ran).toBe(true);
      expect(await advisoryLocks()).toBe(0);
      // The pass closes its session when it ends.
      expect((await sessions(database)).some((s) => s.application_name === 'drover-retention')).toBe(false);
    } finally {
      await other.end();
      await drover.close();
    }
  });
});
