import { createPostgresBackend, Queue, Worker, withBackend, type Processor as BullProcessor, type Telemetry, type WorkerOptions as BullWorkerOptions } from 'bullmq';
import type IORedis from 'ioredis';
import type { Cluster } from 'ioredis';
import { Pool } from 'pg';
import { isTransientError } from '../infra/retry';
import { silentLogger, type Logger } from '../telemetry/logger';
import { createRedisClient, parseRedisTarget, redisTargetName, type RedisTarget } from './redis-target';

/** Which store carries the BullMQ queues. */
export type QueueBackendKind = 'redis' | 'postgres';

/** Options of the queue backend. */
export interface QueueBackendOptions {
  /** Postgres URL; holds the queues when `redisUrl` is unset. */
  databaseUrl: string;
  /** Redis URL; when set, the queues live in Redis (`redis+cluster://host:port,…` for a Redis Cluster). */
  redisUrl?: string;
  /** Prefix of every queue name, so several drovers (or tests) share one store. Default `drover`. */
  namespace?: string;
  /** Where an unreachable store is reported (one warning per outage). */
  logger?: Logger;
  /** BullMQ's telemetry (spans of its calls, trace context in each job): `Tracing.bullmq()`. Default none. */
  telemetry?: Telemetry;
  /**
   * BullMQ's PostgreSQL backend: connections of the one pool the process's
   * queues and workers share for their queries (each worker holds one more, its
   * LISTEN connection). Default 6.
   */
  queuePoolSize?: number;
}

/**
 * What a step job carries. The step row holds the truth: a worker checks the
 * job's id and `runId`/`stepId`/`generation` against it before anything runs
 * (a job that does not match is dropped). The names are for people reading the
 * job in Bull Board and are never trusted.
 */
export interface StepJobData {
  stepId: string;
  runId: string;
  generation: number;
  /**
   * The step's processor: a worker without it leaves the job to one that has it.
   * Absent on jobs enqueued by earlier versions, which are named after it.
   */
  processor?: string;
  /** The run's workflow name (absent on jobs of earlier versions). */
  workflow?: string;
  /** The step's name in its workflow (absent on jobs of earlier versions). */
  step?: string;
  /** The run's page in drover's dashboard, `/runs/<runId>` (absent on jobs of earlier versions). */
  runPath?: string;
  /** The step is rate-limited: its start goes through the rate limiter (a hint; the start is fenced on it). */
  rateLimited?: boolean;
}

const PgBull = withBackend(createPostgresBackend);

/**
 * The one place that knows which BullMQ backend is in use. Everything else asks
 * it for queues and workers by drover queue name, so the engine has one code
 * path for Redis and for BullMQ's PostgreSQL backend.
 */
export class QueueBackend {
  readonly kind: QueueBackendKind;
  readonly namespace: string;
  private readonly queues = new Map<string, Queue<StepJobData>>();
  private redis?: IORedis | Cluster;
  private readonly redisTarget?: RedisTarget;
  /** BullMQ's PostgreSQL backend: the one pool of this process's queues and workers. */
  private pgPool?: Pool;
  private closed = false;
  private unreachable = false;
  private readonly logger: Logger;

  constructor(private readonly options: QueueBackendOptions) {
    this.kind = options.redisUrl ? 'redis' : 'postgres';
    this.redisTarget = options.redisUrl ? parseRedisTarget(options.redisUrl) : undefined;
    this.namespace = options.namespace ?? 'drover';
    this.logger = options.logger ?? silentLogger;
  }

  /** The store, for messages: `Redis at host:port` (never its password) or the Postgres queue store. */
  get storeName(): string {
    if (this.kind === 'postgres') return 'the Postgres queue store';
    return redisTargetName(this.redisTarget!);
  }

  /** Whether the queues live in a Redis Cluster (then each queue's name is a hash tag). */
  get cluster(): boolean {
    return this.redisTarget?.kind === 'cluster';
  }

  /**
   * Reports an error of a queue connection. A transient one (store unreachable)
   * gives one warning line per outage, without a stack; the connections retry
   * with backoff meanwhile. Returns false for other errors, which the caller logs.
   */
  reportError(error: unknown): boolean {
    if (!isTransientError(error)) return false;
    if (!this.unreachable && !this.closed) {
      this.unreachable = true;
      const e = error as { code?: unknown; message?: unknown };
      this.logger.warn(`${this.storeName} is unreachable (${typeof e.code === 'string' ? e.code : e.message}); retrying with backoff until it answers`);
    }
    return true;
  }

  /** Reports that the store answers (again): ends the outage the last warning announced. */
  reportReachable(): void {
    if (!this.unreachable) return;
    this.unreachable = false;
    this.logger.info(`${this.storeName} is reachable again`);
  }

  /** Opens the shared Redis connection now rather than at first use, so an unreachable Redis is reported at once. */
  connect(): void {
    if (this.kind === 'redis') this.redisClient();
  }

  /**
   * The BullMQ queue name of a drover queue: `<namespace>.<queue>`, and on a
   * Redis Cluster `{<namespace>.<queue>}`, a hash tag, so every key of the
   * queue (`bull:{ns.q}:wait`, `…:active`, each job's hash) is in one slot, as
   * BullMQ's Lua scripts need. A queue's keys then live on one shard; queues
   * spread over the shards.
   */
  bullName(queue: string): string {
    return this.cluster ? `{${this.namespace}.${queue}}` : `${this.namespace}.${queue}`;
  }

  /** The drover queue name of a BullMQ queue name (undefined when not ours). */
  droverName(bullName: string): string | undefined {
    const name = this.cluster ? /^\{(.*)\}$/.exec(bullName)?.[1] : bullName;
    const prefix = `${this.namespace}.`;
    return name !== undefined && name.startsWith(prefix) ? name.slice(prefix.length) : undefined;
  }

  /** The producer-side queue (cached, shares one connection). */
  queue(queue: string): Queue<StepJobData> {
    let q = this.queues.get(queue);
    if (!q) {
      if (this.closed) throw new Error('queue backend is closed');
      q = this.kind === 'redis'
        ? new Queue<StepJobData>(this.bullName(queue), { connection: this.redisClient(), telemetry: this.options.telemetry })
        : (new PgBull.Queue<StepJobData>(this.bullName(queue), { connection: this.sharedPool(), telemetry: this.options.telemetry }) as unknown as Queue<StepJobData>);
      q.on('error', () => undefined); // surfaced through the failing calls instead
      this.queues.set(queue, q);
    }
    return q;
  }

  /** Queues created so far. */
  knownQueues(): string[] {
    return [...this.queues.keys()];
  }

  /** A BullMQ worker on a drover queue, with its own connections. */
  createWorker(queue: string, processor: BullProcessor<StepJobData>, options: Omit<BullWorkerOptions, 'connection'>): Worker<StepJobData> {
    if (this.redisTarget?.kind === 'cluster') {
      // BullMQ takes a Cluster only as an instance (it duplicates it for the blocking connection) and leaves it open: closed with the worker.
      const connection = createRedisClient(this.redisTarget, { maxRetriesPerRequest: null, retryStrategy: redisBackoff });
      connection.on('error', () => undefined); // the worker's own 'error' events report it
      const worker = new Worker<StepJobData>(this.bullName(queue), processor, { ...options, connection });
      worker.once('closed', () => connection.disconnect());
      return worker;
    }
    if (this.kind === 'redis') {
      return new Worker<StepJobData>(this.bullName(queue), processor, {
        ...options,
        connection: { url: this.options.redisUrl!, maxRetriesPerRequest: null, retryStrategy: redisBackoff },
        telemetry: this.options.telemetry,
      });
    }
    const pool = this.sharedPool();
    // A worker given a pool takes its LISTEN connection from it for its lifetime: one more connection, so queries keep theirs.
    (pool.options as { max: number }).max += 1;
    return new PgBull.Worker<StepJobData>(this.bullName(queue), processor, { ...options, connection: pool, telemetry: this.options.telemetry }) as unknown as Worker<StepJobData>;
  }

  /** Checks the store answers (for `/ready`). */
  async ping(): Promise<void> {
    if (this.kind === 'redis') {
      await this.redisClient().ping();
    } else {
      await this.queue('default').getJobCounts('waiting');
    }
  }

  /** Closes the queues and shared connections. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    // The queues are closed and so are the workers (a DroverWorker closes its BullMQ workers before the backend).
    await this.pgPool?.end().catch(() => undefined);
    this.pgPool = undefined;
    if (this.redis) {
      this.redis.disconnect();
      this.redis = undefined;
    }
  }

  /**
   * The PostgreSQL backend's pool, one per process (per QueueBackend) for all
   * its queues and workers, instead of one per queue and one per worker (which
   * multiplied with queues and processes). Its connections use BullMQ's schema.
   */
  private sharedPool(): Pool {
    if (!this.pgPool) {
      if (this.closed) throw new Error('queue backend is closed');
      this.pgPool = new Pool({
        connectionString: this.options.databaseUrl, max: this.options.queuePoolSize ?? 6, application_name: 'drover-queue',
        options: '-c search_path=bullmq', keepAlive: true,
      });
      this.pgPool.on('error', (error) => this.reportError(error));
    }
    return this.pgPool;
  }

  private redisClient(): IORedis | Cluster {
    if (!this.redis) {
      // Producer calls fail fast while Redis is away; the reconciler re-enqueues later.
      this.redis = createRedisClient(this.redisTarget!, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false, retryStrategy: redisBackoff });
      this.redis.on('error', (error) => this.reportError(error));
      this.redis.on('ready', () => this.reportReachable());
    }
    return this.redis;
  }
}

/** Reconnect delays while Redis is away: 0.5 s, 1 s, 1.5 s, … up to 5 s. */
const redisBackoff = (times: number): number => Math.min(times * 500, 5000);
