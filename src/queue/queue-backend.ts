import { createPostgresBackend, Queue, Worker, withBackend, type Processor as BullProcessor, type WorkerOptions as BullWorkerOptions } from 'bullmq';
import IORedis from 'ioredis';
import { isTransientError } from '../infra/retry';
import { silentLogger, type Logger } from '../telemetry/logger';

/** Which store carries the BullMQ queues. */
export type QueueBackendKind = 'redis' | 'postgres';

/** Options of the queue backend. */
export interface QueueBackendOptions {
  /** Postgres URL; holds the queues when `redisUrl` is unset. */
  databaseUrl: string;
  /** Redis URL; when set, the queues live in Redis. */
  redisUrl?: string;
  /** Prefix of every queue name, so several drovers (or tests) share one store. Default `drover`. */
  namespace?: string;
  /** Where an unreachable store is reported (one warning per outage). */
  logger?: Logger;
}

/** What a step job carries (the step row holds the rest). */
export interface StepJobData {
  stepId: string;
  runId: string;
  generation: number;
  /**
   * The step's processor: a worker without it leaves the job to one that has it.
   * Absent on jobs enqueued by earlier versions, which are named after it.
   */
  processor?: string;
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
  private redis?: IORedis;
  private closed = false;
  private unreachable = false;
  private readonly logger: Logger;

  constructor(private readonly options: QueueBackendOptions) {
    this.kind = options.redisUrl ? 'redis' : 'postgres';
    this.namespace = options.namespace ?? 'drover';
    this.logger = options.logger ?? silentLogger;
  }

  /** The store, for messages: `Redis at host:port` (never its password) or the Postgres queue store. */
  get storeName(): string {
    if (this.kind === 'postgres') return 'the Postgres queue store';
    try {
      return `Redis at ${new URL(this.options.redisUrl!).host}`;
    } catch {
      return 'Redis';
    }
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

  /** The BullMQ queue name of a drover queue. */
  bullName(queue: string): string {
    return `${this.namespace}.${queue}`;
  }

  /** The drover queue name of a BullMQ queue name (undefined when not ours). */
  droverName(bullName: string): string | undefined {
    const prefix = `${this.namespace}.`;
    return bullName.startsWith(prefix) ? bullName.slice(prefix.length) : undefined;
  }

  /** The producer-side queue (cached, shares one connection). */
  queue(queue: string): Queue<StepJobData> {
    let q = this.queues.get(queue);
    if (!q) {
      if (this.closed) throw new Error('queue backend is closed');
      q = this.kind === 'redis'
        ? new Queue<StepJobData>(this.bullName(queue), { connection: this.redisClient() })
        // A config object (not a pool of ours): BullMQ then owns the pool, its LISTEN client and their errors.
        : (new PgBull.Queue<StepJobData>(this.bullName(queue), {
          connection: { connectionString: this.options.databaseUrl, max: 4, application_name: 'drover-queue' },
        }) as unknown as Queue<StepJobData>);
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
    if (this.kind === 'redis') {
      return new Worker<StepJobData>(this.bullName(queue), processor, {
        ...options,
        connection: { url: this.options.redisUrl!, maxRetriesPerRequest: null, retryStrategy: redisBackoff },
      });
    }
    return new PgBull.Worker<StepJobData>(this.bullName(queue), processor, {
      ...options,
      connection: { connectionString: this.options.databaseUrl, max: 4, application_name: 'drover-queue-worker' },
    }) as unknown as Worker<StepJobData>;
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
    if (this.redis) {
      this.redis.disconnect();
      this.redis = undefined;
    }
  }

  private redisClient(): IORedis {
    if (!this.redis) {
      // Producer calls fail fast while Redis is away; the reconciler re-enqueues later.
      this.redis = new IORedis(this.options.redisUrl!, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false, retryStrategy: redisBackoff });
      this.redis.on('error', (error) => this.reportError(error));
      this.redis.on('ready', () => this.reportReachable());
    }
    return this.redis;
  }
}

/** Reconnect delays while Redis is away: 0.5 s, 1 s, 1.5 s, … up to 5 s. */
const redisBackoff = (times: number): number => Math.min(times * 500, 5000);
