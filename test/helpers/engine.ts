import { Pool } from 'pg';
import { Sql } from '../../src/db/sql';
import { Drover } from '../../src/drover';
import { Reconciler, type ReconcilerOptions } from '../../src/maintenance/reconciler';
import { Dispatcher } from '../../src/queue/dispatcher';
import { FlowControl } from '../../src/flow/flow-control';
import { StepStore } from '../../src/steps/step-store';
import { silentLogger } from '../../src/telemetry/logger';
import { QueueBackend } from '../../src/queue/queue-backend';
import type { DroverWorker, WorkerOptions } from '../../src/worker/worker';
import { createTestDatabase, redisUrlFor, uniqueNamespace, type BackendKind } from './env';

/** A Drover and the workers of one test, on one backend; `close()` checks nothing is left open. */
export interface EngineHarness {
  kind: BackendKind;
  databaseUrl: string;
  namespace: string;
  drover: Drover;
  /** SQL on the test's database (the Drover keeps its own connections to itself). */
  sql: Sql;
  /** The test's queues, on its namespace (for tests that add, inspect or lose jobs). */
  backend: QueueBackend;
  /** Starts a worker (registered for cleanup). */
  startWorker(options: Partial<WorkerOptions>): Promise<DroverWorker>;
  close(): Promise<void>;
}

/** Fast timings for tests: short lease checks, heartbeats and reconciler passes. */
export const FAST_WORKER: Partial<WorkerOptions> = {
  heartbeatIntervalMs: 500,
  leaseCheckIntervalMs: 100,
  gracePeriodMs: 5000,
  reconciler: false,
  maintenance: false,
};

/**
 * Sets up a harness per test on a fresh database copied from the template and
 * a queue namespace of its own. Use in `beforeEach`/`afterEach`.
 */
export async function createEngine(backend: BackendKind, options: { databaseUrl?: string } = {}): Promise<EngineHarness> {
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase());
  const namespace = uniqueNamespace();
  const redisUrl = redisUrlFor(backend);
  const drover = await Drover.connect({ databaseUrl, redisUrl, namespace });
  const pool = new Pool({ connectionString: databaseUrl, max: 5 });
  pool.on('error', () => undefined); // an idle client cut by a Postgres restart; the next query reconnects
  const sql = new Sql(pool);
  const queues = new QueueBackend({ databaseUrl, redisUrl, namespace });
  const workers: DroverWorker[] = [];
  return {
    kind: backend, databaseUrl, namespace, drover, sql, backend: queues,
    async startWorker(workerOptions) {
      const worker = drover.createWorker({ ...FAST_WORKER, ...workerOptions });
      workers.push(worker);
      await worker.run();
      return worker;
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await drover.close();
      await queues.close();
      await sql.pool.end();
    },
  };
}

/** A reconciler on the harness's database and queues (`queuedGraceMs` 0: every queued step is checked at once). */
export function reconcilerFor(engine: EngineHarness, options: ReconcilerOptions = {}): Reconciler {
  return new Reconciler({
    sql: engine.sql, backend: engine.backend, store: new StepStore(engine.sql), dispatcher: new Dispatcher(engine.backend, silentLogger, new FlowControl(engine.sql, silentLogger)),
    logger: silentLogger, metrics: engine.drover.metrics, queues: ['default'],
  }, { queuedGraceMs: 0, ...options });
}

/** Polls `check` until it returns truthy or the deadline passes. */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 20_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
