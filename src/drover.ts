import type { DataSource } from 'typeorm';
import { createDataSource } from './db/data-source';
import { Sql } from './db/sql';
import { resolveWorkflow } from './definitions';
import { Dispatcher } from './dispatcher';
import { ConfigError, DroverError } from './errors';
import { silentLogger, type Logger } from './logger';
import { withInfraRetry } from './infra/retry';
import { metrics } from './metrics';
import { QueueBackend } from './queue-backend';
import { RunService } from './run-service';
import { TERMINAL_RUN_STATUSES, type RunStatus } from './states';
import { StepStore } from './step-store';
import type {
  ActorOptions, AuditEventView, BatchCreateResult, CreateRunRequest, ListRunsQuery, Page, RunView, RunWithSteps,
  WorkerView, WorkflowDefinition, WorkflowView,
} from './types';
import { createWorker, type DroverWorker, type WorkerOptions } from './worker';
import { WorkerRegistry } from './worker-registry';
import { WorkflowRegistry } from './workflow-registry';

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
}

/** A run that did not finish before `waitForRun`'s deadline. */
export class WaitTimeoutError extends DroverError {
  constructor(readonly run: RunView, timeoutMs: number) {
    super('wait_timeout', `run ${run.id} is still ${run.status} after ${timeoutMs} ms`, { retryable: true });
  }
}

/**
 * The producer's handle on drover: create, read, list, cancel and resume runs,
 * and make workers that share its connection settings.
 */
export class Drover {
  /** The run service (also used by the HTTP API). */
  readonly runs: RunService;
  readonly workflows: WorkflowRegistry;
  readonly workers: WorkerRegistry;
  readonly sql: Sql;

  private constructor(
    private readonly options: DroverOptions,
    private readonly ds: DataSource,
    readonly backend: QueueBackend,
    private readonly logger: Logger,
  ) {
    this.sql = Sql.fromDataSource(ds);
    const store = new StepStore(this.sql);
    this.workflows = new WorkflowRegistry(this.sql);
    this.workers = new WorkerRegistry(this.sql);
    this.runs = new RunService(this.sql, store, this.workflows, new Dispatcher(backend, logger), logger, { maxInputBytes: options.maxInputBytes });
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
    if (result.created) metrics.runsCreated.inc();
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
    metrics.runsCreated.inc(created);
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
  async waitForRun(id: string, options: { timeoutMs?: number; pollMs?: number; until?: RunStatus[] } = {}): Promise<RunWithSteps> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const until = options.until ?? TERMINAL_RUN_STATUSES;
    const deadline = Date.now() + timeoutMs;
    let pollMs = options.pollMs ?? 25;
    for (;;) {
      // Polling rides out a Postgres restart; other errors (not_found) end the wait.
      const run = await withInfraRetry(() => this.runs.getRunSummary(id), { maxElapsedMs: Math.max(1000, deadline - Date.now()) });
      if (until.includes(run.status)) return this.runs.getRun(id);
      if (Date.now() >= deadline) throw new WaitTimeoutError(run, timeoutMs);
      await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
      pollMs = Math.min(pollMs * 1.5, 500);
    }
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
      logger: this.logger, ...options,
    });
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
