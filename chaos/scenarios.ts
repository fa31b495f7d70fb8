import type { Pool } from 'pg';
import type { QueueBackend } from '../src/queue/queue-backend';
import { waitForSettle } from './checks';
import type { Fleet, Services } from './cluster';
import type { HostNetwork } from './network';
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
  /** The scenario's queue namespace. */
  namespace: string;
  /** The workers' network hosts (scenarios with `hosts`). */
  network?: HostNetwork;
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
  /** `cluster`: the queues live in a Redis Cluster of 3 masters and 3 replicas made for the scenario. */
  redis?: 'cluster';
  /** The workers run on network hosts of their own (network namespaces and veth pairs; root only). */
  hosts?: boolean;
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

/** How long the `partition` scenario keeps its worker cut off. */
const PARTITION_MS = 20_000;

/** Beyond issue 8's six (full runs only): a Redis Cluster failover, and a worker host cut off (issue 19). */
export const NETWORK_SCENARIOS: Scenario[] = [
  {
    name: 'redis-failover',
    redisOnly: true,
    redis: 'cluster',
    losesAttempts: true,
    fault: 'queues on a Redis Cluster (3 masters, 3 replicas): the master holding the default queue SIGKILLed, its replica promoted by the cluster (node timeout 2 s), the old master started again as a replica',
    inject: (ctx) => at(ctx, ctx.quick ? [0.35] : [0.3, 0.65], async () => {
      const cluster = ctx.services.cluster!;
      const port = cluster.masterWithReplica(`{${ctx.namespace}.default}`);
      if (port === undefined) return ctx.violation('no master with a live replica to kill');
      const { promoted, ms } = await cluster.killMaster(port);
      await cluster.restartNode(port);
      ctx.faultDone(`master ${port} SIGKILLed, replica ${promoted} promoted and the cluster ok in ${ms} ms; ${port} back as a replica`);
    }),
  },
  {
    name: 'partition',
    hosts: true,
    losesAttempts: true,
    fault: `each worker on a network host of its own (a network namespace with a veth pair into the services' bridge); one host cut off from Redis and Postgres (its link down) for ${PARTITION_MS / 1000} s, then healed`,
    inject: (ctx) => at(ctx, [0.3], async () => {
      const names = [...ctx.fleet.hostOf.keys()].filter((n) => ctx.fleet.workers.has(n));
      const name = names[Math.floor(Math.random() * names.length)];
      const host = ctx.fleet.hostOf.get(name)!;
      const cutAt = new Date();
      ctx.network!.cut(host);
      // The steps the cut-off worker holds as running (long attempts are written running), and those it was executing.
      const held: string[] = (await ctx.pool.query(`
        SELECT id FROM drover.steps WHERE status = 'running' AND worker_id = $1
        UNION
        SELECT e.step_id FROM chaos.executions e JOIN drover.steps s ON s.id = e.step_id
         WHERE e.worker = $1 AND e.at > $2::timestamptz - interval '5 seconds' AND s.status IN ('queued', 'running')`, [name, cutAt])).rows.map((r) => r.id);
      await sleep(PARTITION_MS);
      const stillHeld = (await ctx.pool.query(`SELECT id FROM drover.steps WHERE id = ANY ($1::uuid[]) AND status = 'running' AND worker_id = $2`, [held, name])).rows;
      const byOthers = (await ctx.pool.query(`SELECT count(*)::int AS n FROM drover.audit_events
        WHERE type = 'step.succeeded' AND at > $1 AND actor <> $2`, [cutAt, `worker:${name}`])).rows[0].n;
      const healAt = new Date();
      ctx.network!.heal(host);
      if (stillHeld.length) ctx.violation(`partition: ${stillHeld.length} of the ${held.length} steps ${name} held were not taken over in ${PARTITION_MS / 1000} s`);
      if (byOthers === 0) ctx.violation(`partition: no step succeeded on the other workers while ${name} was cut off`);
      ctx.faultDone(`${name} (${host.address}) cut off for ${PARTITION_MS / 1000} s: it held ${held.length} steps, all taken over; ${byOthers} steps succeeded on the others meanwhile; healed`);
      // After the heal it takes work again (its connections come back), within the rest of the load.
      const resumed = async () => (await ctx.pool.query(`SELECT count(*)::int AS n FROM chaos.executions WHERE worker = $1 AND at > $2`, [name, healAt])).rows[0].n as number;
      while (Date.now() + 500 < ctx.endsAt && (await resumed()) === 0) await sleep(500);
      const n = await resumed();
      console.log(`[chaos] partition: ${name} ran ${n} steps between the heal and the end of the load (${((ctx.endsAt - healAt.getTime()) / 1000).toFixed(0)} s)`);
    }),
  },
];

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
