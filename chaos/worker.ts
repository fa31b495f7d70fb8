import { Pool } from 'pg';
import { createLogger } from '../src/telemetry/logger';
import { createWorker } from '../src/worker/worker';
import { CHAOS_WORKFLOWS, chaosProcessors, RECONCILER_BATCH_SIZE } from './workflows';

/** What the orchestrator passes a worker process (as JSON in argv[2]). */
export interface ChaosWorkerArgs {
  name: string;
  databaseUrl: string;
  redisUrl?: string;
  namespace: string;
  concurrency: number;
  gracePeriodMs: number;
}

/**
 * A chaos worker process: the chaos workflows and processors on a real drover
 * worker with short timings, so a kill or a stall is repaired within seconds.
 * SIGTERM (or the orchestrator going away) closes it gracefully.
 */
async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChaosWorkerArgs;
  const logger = createLogger('warn', `chaos-${args.name}`);
  const pool = new Pool({ connectionString: args.databaseUrl, max: 4, application_name: 'chaos-record' });
  pool.on('error', () => undefined);
  const worker = createWorker({
    databaseUrl: args.databaseUrl,
    redisUrl: args.redisUrl,
    namespace: args.namespace,
    workflows: CHAOS_WORKFLOWS,
    processors: chaosProcessors(pool, args.name),
    concurrency: args.concurrency,
    gracePeriodMs: args.gracePeriodMs,
    heartbeatIntervalMs: 1000,
    leaseCheckIntervalMs: 250,
    lockDurationMs: 5000,
    stalledIntervalMs: 2000,
    reconciler: { intervalMs: 1000, queuedGraceMs: 2000, heartbeatTimeoutMs: 4000, batchSize: RECONCILER_BATCH_SIZE },
    id: args.name,
    logger,
  });
  let closing = false;
  const shutdown = (code: number) => {
    if (closing) return;
    closing = true;
    const hard = setTimeout(() => process.exit(code || 1), args.gracePeriodMs + 10_000);
    hard.unref();
    worker.close().then(() => pool.end()).catch(() => undefined).finally(() => process.exit(code));
  };
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  // The orchestrator died: do not linger as an orphan.
  process.on('disconnect', () => shutdown(0));
  try {
    await worker.run();
  } catch (error) {
    // A replacement started mid-fault: exit, and the orchestrator starts a fresh process.
    logger.warn({ err: error }, 'worker start failed');
    await worker.close().catch(() => undefined);
    process.exit(3);
  }
  process.send?.({ ready: true });
}

main().catch((error) => {
  console.error(`chaos worker: ${error?.stack ?? error}`);
  process.exit(1);
});
