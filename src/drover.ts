import type { DataSource } from 'typeorm';
import { ApiKeyStore } from './auth/api-keys';
import { createDataSource } from './db/data-source';
import { Sql } from './db/sql';
import { resolveWorkflow } from './workflows/definitions';
import { Dispatcher } from './queue/dispatcher';
import { ConfigError } from './errors';
import { silentLogger, type Logger } from './telemetry/logger';
import { withInfraRetry } from './infra/retry';
import { Metrics } from './telemetry/metrics';
import { QueueBackend } from './queue/queue-backend';
import { RunService } from './runs/run-service';
import { QueueInspector } from './queue/queue-inspector';
import { RunStore } from './runs/run-store';
import type {
  ActorOptions, AuditEventView, BatchCreateResult, CreateRunRequest, ListRunsQuery, Page, RunView, RunWithSteps,
  WorkerView, WorkflowDefinition, WorkflowView,
} from './types';
import { createWorker, type DroverWorker, type WorkerOptions } from './worker/worker';
import { WorkerRegistry } from './worker/worker-registry';
import { pollRun, type WaitOptions } from './client/wait';
import { WorkflowRegistry } from './workflows/workflow-registry';

/** Options of `Drover.connect`. */
export interface DroverOptions {
  /** Postgres URL (required). */
  databaseUrl: string;
  /** Redis URL; unset: BullMQ's PostgreSQL backend in the same database. */
  redisUrl?: string;
  /** Queue name prefix shared with the workers. Default `drover`. */
  namespace?: string;
  /** Largest run input in bytes of JSON. Default 1 MiB. */
  maxInputBytes?: number;
  /** Postgres pool size. Default 10. */
  poolSize?: number;
  logger?: Logger;
  /** Where counters go; the workers this Drover creates share it. Default: a `Metrics` of its own. */
  metrics?: Metrics;
}

export { WaitTimeoutError } from './client/wait';

/**
 * The producer's handle on drover: create, read, list, cancel and resume runs,
 * and make workers that share its connection settings.
 */
export class Drover {
  /** The run service (also used by the HTTP API). */
  readonly runs: RunService;
  readonly workflows: WorkflowRegistry;
  readonly workers: WorkerRegistry;
  /** The Prometheus metrics of this Drover and the workers it creates. */
  readonly metrics: Metrics;
  /** API keys (create, list, revoke, verify). */
  readonly apiKeys: ApiKeyStore;
  /** The queues as the app shell sees them: backend, job counts, Bull Board's queue objects. */
  readonly queues: QueueInspector;
  private readonly sql: Sql;

  private constructor(
    private readonly options: DroverOptions,
    private readonly ds: DataSource,
    private readonly backend: QueueBackend,
    private readonly logger: Logger,
  ) {
    this.sql = Sql.fromDataSource(ds);
    this.metrics = options.metrics ?? new Metrics();
    this.apiKeys = new ApiKeyStore(this.sql);
    this.queues = new QueueInspector(backend);
    this.workflows = new WorkflowRegistry(this.sql);
    this.workers = new WorkerRegistry(this.sql);
    this.runs = new RunService(this.sql, new RunStore(this.sql), this.workflows, new Dispatcher(backend, logger), logger, this.metrics, { maxInputBytes: options.maxInputBytes });
  }

  /** Connects to Postgres (migrations must have been applied) and the queue backend. */
  static async connect(options: DroverOptions): Promise<Drover> {
    if (!options?.databaseUrl) throw new ConfigError('Drover.connect: databaseUrl is required');
    const logger = options.logger ?? silentLogger;
    const ds = createDataSource({ url: options.databaseUrl, poolSize: options.poolSize, applicationName: 'drover' });
    await ds.initialize();
    const backend = new QueueBackend({ databaseUrl: options.databaseUrl, redisUrl: options.redisUrl, namespace: options.namespace, logger });
    return new Drover(options, ds, backend, logger);
  }

  /** Starts a run (or returns the existing one for a seen idempotency key). */
  async createRun(request: CreateRunRequest, options: ActorOptions = {}): Promise<RunView> {
    return (await this.submitRun(request, options)).run;
  }

  /** Like `createRun`, also telling whether the run was created now. */
  async submitRun(request: CreateRunRequest, options: ActorOptions = {}): Promise<{ run: RunView; created: boolean }> {
    const result = await this.runs.createRun(request, options.actor ?? 'client');
    if (result.created) this.metrics.runsCreated.inc();
    return result;
  }

  /** Starts many runs; each item succeeds or fails on its own. */
  async createRuns(requests: CreateRunRequest[], options: ActorOptions = {}): Promise<BatchCreateResult> {
    if (!Array.isArray(requests)) throw new TypeError('createRuns expects an array of run requests');
    const items: BatchCreateResult['items'] = [];
    // Chunks keep one transaction's statements to a sensible size.
    for (let start = 0; start < requests.length; start += 1000) {
      const outcomes = await this.runs.createRuns(requests.slice(start, start + 1000), options.actor ?? 'client');
      outcomes.forEach((o, i) => items.push(o.ok
        ? { index: start + i, id: o.run.id, ...(o.created ? {} : { existing: true }) }
        : { index: start + i, error: { code: o.error.code, message: o.error.message, ...(o.error.details ? { details: o.error.details } : {}) } }));
    }
    const created = items.filter((i) => i.id && !i.existing).length;
    this.metrics.runsCreated.inc(created);
    return { created, failed: items.filter((i) => i.error).length, items };
  }

  getRun(id: string): Promise<RunWithSteps> {
    return this.runs.getRun(id);
  }

  listRuns(query: ListRunsQuery = {}): Promise<Page<RunView>> {
    return this.runs.listRuns(query);
  }

  getAudit(id: string): Promise<{ items: AuditEventView[] }> {
    return this.runs.getAudit(id);
  }

  cancelRun(id: string, options: ActorOptions = {}): Promise<RunView> {
    return this.runs.cancelRun(id, options.actor ?? 'client');
  }

  retryRun(id: string, options: ActorOptions = {}): Promise<RunView> {
    return this.runs.retryRun(id, options.actor ?? 'client');
  }

  /** Polls until the run is terminal; throws `WaitTimeoutError` past `timeoutMs` (default 60 000). */
  async waitForRun(id: string, options: WaitOptions = {}): Promise<RunWithSteps> {
    // Polling rides out a Postgres restart; other errors (not_found) end the wait.
    await pollRun((deadline) => withInfraRetry(() => this.runs.getRunSummary(id), { maxElapsedMs: Math.max(1000, deadline - Date.now()) }),
      options, { pollMs: 25, maxPollMs: 500 });
    return this.runs.getRun(id);
  }

  /** Registers workflow definitions (workers do this at start-up). */
  async registerWorkflows(workflows: WorkflowDefinition[]): Promise<void> {
    await this.workflows.register(workflows.map((w) => resolveWorkflow(w)));
  }

  listWorkflows(): Promise<WorkflowView[]> {
    return this.workflows.list();
  }

  listWorkers(): Promise<WorkerView[]> {
    return this.workers.list();
  }

  /** A worker with this Drover's connection settings. */
  createWorker(options: Omit<WorkerOptions, 'databaseUrl' | 'redisUrl' | 'namespace'> & Partial<Pick<WorkerOptions, 'namespace'>>): DroverWorker {
    return createWorker({
      databaseUrl: this.options.databaseUrl, redisUrl: this.options.redisUrl, namespace: this.options.namespace,
      logger: this.logger, metrics: this.metrics, ...options,
    });
  }

  /** Whether drover's migrations have run on this database (the schema exists). */
  async isMigrated(): Promise<boolean> {
    const [row] = await this.sql.query<{ runs: string | null }>(`SELECT to_regclass('drover.runs')::text AS runs`);
    return Boolean(row?.runs);
  }

  /** Checks Postgres and the queue backend answer (for `/ready`). */
  async checkReady(): Promise<{ postgres: boolean; queue: boolean }> {
    const timeout = <T>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), 2000).unref())]);
    const [postgres, queue] = await Promise.all([
      timeout(this.sql.query('SELECT 1')).then(() => true, () => false),
      timeout(this.backend.ping()).then(() => true, () => false),
    ]);
    return { postgres, queue };
  }

  async close(): Promise<void> {
    await this.backend.close();
    await this.ds.destroy().catch(() => undefined);
  }
}
