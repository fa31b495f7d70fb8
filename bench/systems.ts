import { createPostgresBackend, DEFAULT_SCHEMA, Queue, Worker, withBackend } from 'bullmq';
import IORedis from 'ioredis';
import { Pool } from 'pg';
import { retentionOf } from '../src/queue/dispatcher';
import { Drover } from '../src/drover';
import type { WorkflowDefinition } from '../src/types';

/** The systems the benchmark compares. */
export const SYSTEMS = ['bullmq-redis', 'drover-redis', 'bullmq-pg', 'drover-pg', 'pg-boss', 'graphile-worker'] as const;
export type SystemId = (typeof SYSTEMS)[number];

/** Labels of the table's columns. */
export const SYSTEM_LABELS: Record<SystemId, string> = {
  'bullmq-redis': 'BullMQ (Redis)',
  'drover-redis': 'drover (Redis)',
  'bullmq-pg': 'BullMQ (PG backend)',
  'drover-pg': 'drover (PG backend)',
  'pg-boss': 'pg-boss',
  'graphile-worker': 'graphile-worker',
};

/** The raw BullMQ system a system's ratio is taken against (same store family). */
export function baselineOf(system: SystemId): SystemId {
  return system === 'bullmq-redis' || system === 'drover-redis' ? 'bullmq-redis' : 'bullmq-pg';
}

export const isDrover = (s: SystemId): boolean => s === 'drover-redis' || s === 'drover-pg';
export const usesRedis = (s: SystemId): boolean => s === 'bullmq-redis' || s === 'drover-redis';

/** Where one measurement runs: a database, maybe Redis, and a queue name (or drover namespace) of its own. */
export interface Target {
  system: SystemId;
  databaseUrl: string;
  redisUrl?: string;
  /** Queue name (raw queues) or drover namespace; fresh per measurement. */
  queue: string;
}

/** Drover's queue name in the benchmark workflows. */
export const DROVER_QUEUE = 'default';

/** Workflows the benchmark registers. */
export const WORKFLOWS: WorkflowDefinition[] = [
  { name: 'single', steps: [{ name: 'only', processor: 'noop' }] },
  chainWorkflow(200),
  fanWorkflow(1000),
  // 1 + 998 + 1 = the 1,000-step run of the creation workload.
  fanWorkflow(998),
];

/** A chain of `n` steps s0 → s1 → … */
export function chainWorkflow(n: number): WorkflowDefinition {
  return {
    name: `chain${n}`,
    steps: Array.from({ length: n }, (_, i) => ({ name: `s${i}`, processor: 'chain', ...(i ? { dependsOn: [`s${i - 1}`] } : {}) })),
  };
}

/** One fan-out step → `width` parallel steps → one fan-in step. */
export function fanWorkflow(width: number): WorkflowDefinition {
  const mids = Array.from({ length: width }, (_, i) => `m${i}`);
  return {
    name: `fan${width}`,
    steps: [
      { name: 'root', processor: 'noop' },
      ...mids.map((name) => ({ name, processor: 'noop', dependsOn: ['root'] })),
      { name: 'sink', processor: 'noop', dependsOn: mids },
    ],
  };
}

/** BullMQ on Postgres: every class comes from this factory. */
export const PgBull = withBackend(createPostgresBackend);

/** Options of raw BullMQ jobs: the same retention drover's jobs use on that backend. */
export const rawJobOpts = (system: SystemId) => retentionOf(system === 'bullmq-redis' ? 'redis' : 'postgres');

/** A pg.Pool for BullMQ's PostgreSQL backend (its SQL is unqualified). */
export function bullPool(databaseUrl: string, max = 6): Pool {
  return new Pool({ connectionString: databaseUrl, max, options: `-c search_path=${DEFAULT_SCHEMA}` });
}

/** A producer-side BullMQ queue on either backend. */
export function rawQueue(target: Target, connection: IORedis | Pool): Queue {
  return target.system === 'bullmq-redis'
    ? new Queue(target.queue, { connection: connection as IORedis })
    : (new PgBull.Queue(target.queue, { connection: connection as Pool }) as unknown as Queue);
}

/** A consumer-side BullMQ worker on either backend. */
export function rawWorker(target: Target, processor: (job: { data: any }) => Promise<unknown>, concurrency: number): Worker {
  // Retention comes with each job (rawJobOpts), as drover's does.
  const opts = { concurrency, autorun: false };
  return target.system === 'bullmq-redis'
    ? new Worker(target.queue, processor, { ...opts, connection: { url: target.redisUrl!, maxRetriesPerRequest: null } })
    : (new PgBull.Worker(target.queue, processor, { ...opts, connection: { connectionString: target.databaseUrl, max: 4 } }) as unknown as Worker);
}

/** Connects a Drover producer for a target. */
export function connectDrover(target: Target): Promise<Drover> {
  return Drover.connect({ databaseUrl: target.databaseUrl, redisUrl: usesRedis(target.system) ? target.redisUrl : undefined, namespace: target.queue });
}

/** pg-boss's queue name for a target (its names allow letters, digits, dashes, underscores). */
export const bossQueue = (target: Target): string => target.queue.replace(/[^A-Za-z0-9_-]/g, '_');
