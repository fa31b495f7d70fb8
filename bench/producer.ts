import { makeWorkerUtils, type WorkerUtils } from 'graphile-worker';
import IORedis from 'ioredis';
import { Pool } from 'pg';
import { PgBoss } from 'pg-boss';
import type { Queue } from 'bullmq';
import type { Drover } from '../src/drover';
import { bossQueue, bullPool, connectDrover, DROVER_QUEUE, isDrover, PgBull, rawJobOpts, rawQueue, type Target } from './systems';

/**
 * The producer side of one system for one measurement: enqueue jobs (or create
 * runs), and pause/resume the queue where the system allows it, so workers
 * can be fully started before the clock starts.
 */
export interface Producer {
  target: Target;
  /** Creates `n` jobs, or `n` single-step runs; returns the run ids (drover) or nothing. */
  populate(n: number): Promise<string[]>;
  /** Starts one chain (drover: a run of the chain workflow; queues: job 0 of a self-enqueuing chain). */
  startChain(): Promise<void>;
  /** Holds the queue (BullMQ, drover) before populating; false when the system has no pause. */
  pause(): Promise<boolean>;
  resume(): Promise<void>;
  drover?: Drover;
  close(): Promise<void>;
}

const CHUNK = 1000;

export async function openProducer(target: Target): Promise<Producer> {
  if (isDrover(target.system)) return openDroverProducer(target);
  switch (target.system) {
    case 'bullmq-redis':
    case 'bullmq-pg': {
      const conn = target.system === 'bullmq-redis' ? new IORedis(target.redisUrl!, { maxRetriesPerRequest: null }) : bullPool(target.databaseUrl);
      const queue = rawQueue(target, conn);
      await queue.waitUntilReady();
      return {
        target,
        async populate(n) {
          for (let i = 0; i < n; i += CHUNK) {
            await queue.addBulk(Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) => ({ name: 'noop', data: { i: i + k }, opts: rawJobOpts(target.system) })));
          }
          return [];
        },
        async startChain() { await queue.add('link', { i: 0 }, rawJobOpts(target.system)); },
        async pause() { await queue.pause(); return true; },
        async resume() { await queue.resume(); },
        async close() {
          await queue.close();
          if (conn instanceof IORedis) conn.disconnect();
          else await (conn as Pool).end();
        },
      };
    }
    case 'pg-boss': {
      const boss = new PgBoss({ connectionString: target.databaseUrl, max: 4, schedule: false, supervise: false } as any);
      boss.on('error', () => undefined);
      await boss.start();
      const name = bossQueue(target);
      await boss.createQueue(name, { notify: true } as any);
      return {
        target,
        async populate(n) {
          for (let i = 0; i < n; i += CHUNK) {
            await boss.insert(name, Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) => ({ data: { i: i + k } })));
          }
          return [];
        },
        async startChain() { await boss.send(name, { i: 0 }); },
        async pause() { return false; },
        async resume() { /* workers start on go */ },
        close: () => boss.stop({ graceful: false, wait: true } as any),
      };
    }
    case 'graphile-worker': {
      const utils: WorkerUtils = await makeWorkerUtils({ connectionString: target.databaseUrl });
      await utils.migrate();
      return {
        target,
        async populate(n) {
          for (let i = 0; i < n; i += CHUNK) {
            await utils.addJobs(Array.from({ length: Math.min(CHUNK, n - i) }, (_, k) => ({ identifier: `noop_${target.queue}`, payload: { i: i + k } })));
          }
          return [];
        },
        async startChain() { await utils.addJob(`link_${target.queue}`, { i: 0 }); },
        async pause() { return false; },
        async resume() { /* workers start on go */ },
        close: async () => { await utils.release(); },
      };
    }
    default:
      throw new Error(`no producer for ${target.system}`);
  }
}

async function openDroverProducer(target: Target): Promise<Producer> {
  const drover = await connectDrover(target);
  await drover.registerWorkflows((await import('./systems')).WORKFLOWS);
  // Pause/resume through BullMQ on drover's own queue name.
  const bullName = drover.queues.bullName(DROVER_QUEUE);
  let pool: Pool | undefined;
  let redis: IORedis | undefined;
  let queue: Queue | undefined;
  const control = async () => {
    if (!queue) {
      if (target.system === 'drover-redis') {
        redis = new IORedis(target.redisUrl!, { maxRetriesPerRequest: null });
        queue = rawQueue({ ...target, system: 'bullmq-redis', queue: bullName }, redis);
      } else {
        pool = bullPool(target.databaseUrl, 2);
        queue = new PgBull.Queue(bullName, { connection: pool }) as unknown as Queue;
      }
    }
    return queue;
  };
  return {
    target,
    drover,
    async populate(n) {
      const ids: string[] = [];
      const requests = Array.from({ length: n }, () => ({ workflow: 'single' }));
      const result = await drover.createRuns(requests);
      if (result.failed) throw new Error(`createRuns: ${result.failed} failed`);
      for (const item of result.items) ids.push(item.id!);
      return ids;
    },
    async startChain() { await drover.createRun({ workflow: 'chain200' }); },
    async pause() { await (await control()).pause(); return true; },
    async resume() { await (await control()).resume(); },
    async close() {
      await queue?.close();
      redis?.disconnect();
      await pool?.end();
      await drover.close();
    },
  };
}
