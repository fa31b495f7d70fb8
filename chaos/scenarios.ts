import type { Pool } from 'pg';
import type { QueueBackend } from '../src/queue/queue-backend';
import { waitForSettle } from './checks';
import type { Fleet, Services } from './cluster';
import type { Producer } from './producer';
import { RECONCILER_BATCH_SIZE } from './workflows';

/** What a fault injector gets while the load runs. */
export interface FaultContext {
  services: Services;
  fleet: Fleet;
  producer: Producer;
  /** The scenario's queues (for faults that lose jobs). */
  queues: QueueBackend;
  /** The scenario's database. */
  pool: Pool;
  /** Records a violation the scenario itself saw (it fails the scenario). */
  violation(what: string): void;
  /** Length of the load, in ms; injectors stop before it ends. */
  loadMs: number;
  /** When the load ends (epoch ms). */
  endsAt: number;
  /** The quick size (fewer, shorter faults). */
  quick: boolean;
  /** Counts one injected fault and starts a recovery probe (a run whose time to success is the recovery time). */
  faultDone(what: string): void;
}

/** One chaos scenario: a fault injected repeatedly or once while the load runs. */
export interface Scenario {
  name: string;
  fault: string;
  /** The fault is Redis's: the scenario needs the Redis queue backend. */
  redisOnly?: boolean;
  /** The fault kills or stalls workers, so an attempt can be lost (a single-attempt step may then fail). */
  losesAttempts?: boolean;
  /** Runs before the load starts (e.g. submits runs that must be older than every run of the load). */
  prepare?(producer: Producer): Promise<void>;
  inject(ctx: FaultContext): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Repeats `fault` every `everyMs` until shortly before the load ends (bounded by the load's length). */
async function every(ctx: FaultContext, everyMs: number, fault: () => Promise<void>): Promise<void> {
  await sleep(everyMs);
  while (Date.now() + 1000 < ctx.endsAt) {
    await fault();
    await sleep(everyMs);
  }
}

/** At each fraction of the load, once. */
async function at(ctx: FaultContext, fractions: number[], fault: () => Promise<void>): Promise<void> {
  const start = ctx.endsAt - ctx.loadMs;
  for (const f of fractions) {
    await sleep(Math.max(0, start + f * ctx.loadMs - Date.now()));
    await fault();
  }
}

/** Runs of the backlog scenario: several reconciler batches of long-delayed steps. */
const BACKLOG_RUNS = 5 * RECONCILER_BATCH_SIZE;
/** How long the other runs of the backlog scenario may take to finish after the load, the backlog still in place. */
const BACKLOG_SETTLE_MS = 30_000;

/** The six scenarios of issue 8, in order, and the reconciler's backlog (issue 12). */
export const SCENARIOS: Scenario[] = [
  {
    name: 'worker-sigkill',
    losesAttempts: true,
    fault: 'SIGKILL of a random worker every few seconds, a new one started',
    inject: (ctx) => every(ctx, ctx.quick ? 3000 : 4000, async () => {
      const name = ctx.fleet.signalRandomWorker('SIGKILL');
      void ctx.fleet.startWorker();
      ctx.faultDone(`SIGKILL ${name}`);
    }),
  },
  {
    name: 'redis-restart',
    redisOnly: true,
    fault: 'Redis restarted empty (no persistence) mid-load',
    inject: (ctx) => at(ctx, ctx.quick ? [0.35] : [0.3, 0.65], async () => {
      await ctx.services.restartRedis();
      ctx.faultDone('Redis restarted empty');
    }),
  },
  {
    name: 'postgres-restart',
    fault: 'Postgres fast shutdown mid-load, down 3 s, started again on the same port',
    inject: (ctx) => at(ctx, ctx.quick ? [0.35] : [0.3, 0.65], async () => {
      await ctx.services.restartPostgres(3000);
      ctx.faultDone('Postgres restarted');
    }),
  },
  {
    name: 'redis-sigstop',
    redisOnly: true,
    losesAttempts: true,
    fault: 'Redis paused with SIGSTOP for 8 s (lock duration 5 s), then SIGCONT',
    inject: (ctx) => at(ctx, ctx.quick ? [0.25] : [0.2, 0.6], async () => {
      await ctx.services.pauseRedis(8000);
      ctx.faultDone('Redis resumed');
    }),
  },
  {
    name: 'api-restart',
    fault: 'API server SIGKILLed and restarted every few seconds while producers retry with idempotency keys',
    inject: (ctx) => every(ctx, ctx.quick ? 5000 : 6000, async () => {
      ctx.fleet.killApi();
      await sleep(1000);
      await ctx.fleet.startApi();
      ctx.faultDone('API server restarted');
    }),
  },
  {
    name: 'worker-sigterm',
    losesAttempts: true,
    fault: 'SIGTERM (graceful drain, grace 2 s, so slow steps are sometimes abandoned) of a random worker every few seconds, a new one started',
    inject: (ctx) => every(ctx, ctx.quick ? 4000 : 5000, async () => {
      const name = ctx.fleet.signalRandomWorker('SIGTERM');
      void ctx.fleet.startWorker();
      ctx.faultDone(`SIGTERM ${name}`);
    }),
  },
  {
    name: 'reconciler-backlog',
    fault: `${BACKLOG_RUNS} runs delayed 10 min (${BACKLOG_RUNS / RECONCILER_BATCH_SIZE}× the reconciler's batch of ${RECONCILER_BATCH_SIZE}) queued first; `
      + 'every 3 s every waiting, delayed and prioritized job deleted from the queues (lost, as after an eviction; those of the load are behind the backlog); every other run must finish within 30 s of the load with the backlog still there, then the backlog is cancelled',
    // The backlog is older than every run of the load, so it holds the reconciler's first batches.
    prepare: async (producer) => {
      await Promise.all(Array.from({ length: BACKLOG_RUNS }, () => producer.submit('backlog', { delayMs: 600_000 })));
    },
    inject: async (ctx) => {
      await every(ctx, 3000, async () => { ctx.faultDone(`deleted ${await loseWaitingJobs(ctx.queues)} jobs`); });
      // Every other run must finish while the backlog is still there: cancelling it first would unpin a stuck reconciler.
      await sleep(Math.max(0, ctx.endsAt - Date.now()));
      await ctx.producer.drain();
      const backlog = [...ctx.producer.records.values()].filter((r) => r.kind === 'backlog').flatMap((r) => [...r.ids]);
      if (!Number.isFinite(await waitForSettle(ctx.pool, BACKLOG_SETTLE_MS, backlog))) {
        ctx.violation(`runs besides the backlog still open ${BACKLOG_SETTLE_MS / 1000} s after the load: lost jobs behind the backlog were not re-enqueued`);
      }
      await ctx.producer.cancelAll('backlog');
    },
  },
];

/** Fault: deletes every waiting, delayed or prioritized step job (as evicted keys would, on either backend); returns how many went. */
async function loseWaitingJobs(queues: QueueBackend): Promise<number> {
  let lost = 0;
  for (const queue of ['default', 'slow']) {
    for (const job of await queues.queue(queue).getJobs(['waiting', 'delayed', 'prioritized'])) {
      // 0 when a worker took the job meanwhile (an active job is locked): not lost then.
      lost += await queues.queue(queue).remove(job.id!);
    }
  }
  return lost;
}

/**
 * Beyond those (full runs only): every few seconds one fault drawn at random
 * from all of them, so faults land on each other's recovery.
 */
export const MIXED_SCENARIO: Scenario = {
  name: 'mixed',
  fault: 'every 5 s one of: worker SIGKILL, worker SIGTERM, API SIGKILL, Redis restart, Redis SIGSTOP 6 s, Postgres restart',
  redisOnly: true,
  losesAttempts: true,
  inject: (ctx) => every(ctx, 5000, async () => {
    const faults: Array<[string, () => Promise<void>]> = [
      ['worker SIGKILL', async () => { ctx.fleet.signalRandomWorker('SIGKILL'); void ctx.fleet.startWorker(); }],
      ['worker SIGTERM', async () => { ctx.fleet.signalRandomWorker('SIGTERM'); void ctx.fleet.startWorker(); }],
      ['API SIGKILL', async () => { ctx.fleet.killApi(); await sleep(1000); await ctx.fleet.startApi(); }],
      ['Redis restart', () => ctx.services.restartRedis()],
      ['Redis SIGSTOP', () => ctx.services.pauseRedis(6000)],
      ['Postgres restart', () => ctx.services.restartPostgres(2000)],
    ];
    const [what, fault] = faults[Math.floor(Math.random() * faults.length)];
    await fault();
    ctx.faultDone(what);
  }),
};
