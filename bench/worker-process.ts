/**
 * A benchmark worker: one child process consuming one system's queue with an
 * empty processor. Talks to the parent over IPC:
 *   parent → child: `{ type: 'go' }` (start consuming where the system cannot be paused), `{ type: 'stop' }`
 *   child → parent: `ready`, `progress` (jobs the processor finished), `result` (peak RSS, chain marks)
 */
import { Logger as GraphileLogger, run as runGraphile, type Runner } from 'graphile-worker';
import { PgBoss } from 'pg-boss';
import { createWorker } from '../src/worker/worker';
import { now } from './stats';
import { traceQueries } from './trace';
import { bossQueue, bullPool, rawJobOpts, rawQueue, rawWorker, WORKFLOWS, type SystemId, type Target } from './systems';

/** What the parent tells a worker process (JSON in BENCH_WORKER). */
export interface WorkerConfig {
  target: Target;
  concurrency: number;
  /** `chain`: record processor start/end per chain index, and (raw queues) enqueue the next link. */
  mode: 'throughput' | 'chain';
  chainLength: number;
}

export type ToChild = { type: 'go' } | { type: 'stop' };
export type FromChild =
  | { type: 'ready' }
  | { type: 'progress'; done: number; firstAt: number; lastAt: number }
  | { type: 'result'; maxRssKb: number; cpuMs: number; marks: Array<[index: number, start: number, end: number]> }
  | { type: 'error'; message: string };

const traceReport = process.env.BENCH_TRACE ? traceQueries() : undefined;
const config: WorkerConfig = JSON.parse(process.env.BENCH_WORKER ?? '{}');
const send = (m: FromChild) => process.send?.(m);
let done = 0;
let firstAt = 0;
let lastAt = 0;
const marks: Array<[number, number, number]> = [];

function finished(count = 1): void {
  done += count;
  lastAt = now();
  if (!firstAt) firstAt = lastAt;
}

/** Starts consuming; returns the "go" hook (for systems started on go) and a closer. */
async function start(system: SystemId, target: Target): Promise<{ go?: () => Promise<void>; close: () => Promise<void> }> {
  const chain = config.mode === 'chain';
  switch (system) {
    case 'bullmq-redis':
    case 'bullmq-pg': {
      const IORedis = (await import('ioredis')).default;
      const conn = chain ? (system === 'bullmq-redis' ? new IORedis(target.redisUrl!, { maxRetriesPerRequest: null }) : bullPool(target.databaseUrl, 2)) : undefined;
      const next = conn ? rawQueue(target, conn) : undefined;
      const worker = rawWorker(target, async (job) => {
        if (!chain) return null;
        const i = job.data.i as number;
        const start = now();
        if (i + 1 < config.chainLength) {
          marks.push([i, start, now()]);
          await next!.add('link', { i: i + 1 }, rawJobOpts(system));
        } else marks.push([i, start, now()]);
        return null;
      }, config.concurrency);
      worker.on('completed', () => finished());
      void worker.run();
      await worker.waitUntilReady();
      return {
        close: async () => {
          await worker.close();
          await next?.close();
          if (conn && 'disconnect' in conn) conn.disconnect();
          else if (conn) await (conn as { end(): Promise<void> }).end();
        },
      };
    }
    case 'drover-redis':
    case 'drover-pg': {
      const worker = createWorker({
        databaseUrl: target.databaseUrl, redisUrl: system === 'drover-redis' ? target.redisUrl : undefined, namespace: target.queue,
        workflows: WORKFLOWS, concurrency: config.concurrency,
        // BENCH_RECORD_START_AFTER_MS=0 measures the start written on its own (before the one-write path).
        recordStartAfterMs: process.env.BENCH_RECORD_START_AFTER_MS ? Number(process.env.BENCH_RECORD_START_AFTER_MS) : undefined,
        processors: {
          noop: async () => { finished(); return null; },
          chain: async (ctx) => {
            const t = now();
            marks.push([Number(ctx.step.name.slice(1)), t, now()]);
            finished();
            return null;
          },
        },
      });
      await worker.run();
      return { close: () => worker.close() };
    }
    case 'pg-boss': {
      const boss = new PgBoss({ connectionString: target.databaseUrl, max: 10, useListenNotify: true, schedule: false, supervise: false } as any);
      boss.on('error', () => undefined);
      await boss.start();
      const name = bossQueue(target);
      return {
        go: async () => {
          await boss.work<{ i?: number }>(name, { batchSize: config.concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 }, async (jobs) => {
            for (const job of jobs) {
              if (chain) {
                const i = job.data.i!;
                const t = now();
                marks.push([i, t, t]);
                if (i + 1 < config.chainLength) await boss.send(name, { i: i + 1 });
              }
            }
            finished(jobs.length);
          });
        },
        close: () => boss.stop({ graceful: true, wait: true, timeout: 10_000 } as any),
      };
    }
    case 'graphile-worker': {
      let runner: Runner | undefined;
      return {
        go: async () => {
          runner = await runGraphile({
            connectionString: target.databaseUrl, concurrency: config.concurrency, noHandleSignals: true, pollInterval: 2000,
            logger: new GraphileLogger(() => () => undefined),
            // Task names carry the measurement's queue name: graphile-worker has one job table per database.
            taskList: {
              [`noop_${target.queue}`]: async () => undefined,
              [`link_${target.queue}`]: async (payload: any, helpers) => {
                const i = payload.i as number;
                const t = now();
                marks.push([i, t, t]);
                if (i + 1 < config.chainLength) await helpers.addJob(`link_${target.queue}`, { i: i + 1 });
              },
            },
          });
          runner.events.on('job:success', () => finished());
        },
        close: async () => { await runner?.stop(); },
      };
    }
  }
}

async function main(): Promise<void> {
  const consumer = await start(config.target.system, config.target);
  // CPU from here on: consuming, not loading modules and connecting.
  const cpuAtReady = process.cpuUsage();
  const timer = setInterval(() => send({ type: 'progress', done, firstAt, lastAt }), 25);
  process.on('message', (m: ToChild) => {
    if (m.type === 'go') {
      void consumer.go?.().catch((e) => send({ type: 'error', message: String(e?.stack ?? e) }));
    } else if (m.type === 'stop') {
      clearInterval(timer);
      void consumer.close().catch(() => undefined).finally(() => {
        send({ type: 'progress', done, firstAt, lastAt });
        if (traceReport) process.stderr.write(`[${config.target.system}] ${done} jobs; Postgres round trips:\n${traceReport()}\n`);
        const cpu = process.cpuUsage(cpuAtReady);
        send({ type: 'result', maxRssKb: process.resourceUsage().maxRSS, cpuMs: (cpu.user + cpu.system) / 1000, marks });
        setTimeout(() => process.exit(0), 50);
      });
    }
  });
  send({ type: 'ready' });
}

main().catch((error) => {
  send({ type: 'error', message: String(error?.stack ?? error) });
  setTimeout(() => process.exit(1), 50);
});
