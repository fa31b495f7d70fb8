import { Client } from 'pg';
import type { DataSource } from 'typeorm';
import { appendQueueEvents, readQueueEvents, type QueueEvent, type QueueEventView } from './audit/audit';
import { DashboardQueries } from './dashboard/queries';
import { runsChangedSince, type RunsChanged } from './audit/audit';
import { ApiKeyStore } from './auth/api-keys';
import { resolveSessionOptions, SessionStore, type SessionOptions } from './auth/sessions';
import { createDataSource } from './db/data-source';
import { Sql } from './db/sql';
import { compileWorkflows, resolveWorkflow } from './workflows/definitions';
import { Dispatcher } from './queue/dispatcher';
import { FlowControl } from './flow/flow-control';
import { ConfigError, InvalidInputError, notFound } from './errors';
import { limitCreate, workspaceAllowed } from './runs/workspace-limit';
import { outputOfRun } from './client/result';
import { isWorkflowBuilder } from './workflows/builder';
import type { RunHandle, StartArgs, StartOptions, TypedWorkflow, WorkflowOutput } from './workflows/typed';
import { silentLogger, type Logger } from './telemetry/logger';
import { withInfraRetry } from './infra/retry';
import { Metrics } from './telemetry/metrics';
import type { Tracing } from './telemetry/tracing';
import { readHealth, type HealthReading } from './telemetry/health-readings';
import { QueueBackend } from './queue/queue-backend';
import { RunService } from './runs/run-service';
import { QueueInspector } from './queue/queue-inspector';
import { RunStore } from './runs/run-store';
import type {
  AccessOptions, ActorOptions, AuditEventView, RunListItem, BatchCreateResult, CompilableWorkflow, CreateRunRequest, ListRunsQuery, Page, RunView, RunWithSteps,
  WorkerView, WorkflowDefinition, WorkflowView,
} from './types';
import { createWorker, type DroverWorker, type WorkerOptions } from './worker/worker';
import { WorkerRegistry } from './worker/worker-registry';
import { pollRun, type WaitOptions } from './client/wait';
import { WorkflowRegistry } from './workflows/workflow-registry';
import { SignalService, type SignalView } from './waits/signals';
import { StepStore } from './steps/step-store';
import { cancelChildren, decorateRun } from './waits/run-links';
import { ScheduleStore, type ScheduleView } from './schedules/schedule-store';
import { Maintenance, type MaintenanceOptions } from './maintenance/maintenance';
import { Retention, type RetentionOptions, type RetentionReport } from './maintenance/retention';
import { readStepLogs, type StepLogPage, type StepLogQuery } from './steps/step-logs';
import { listMapElements, type MapElementPage, type MapElementQuery } from './waits/map-elements';

/** Options of `Drover.connect`. */
export interface DroverOptions {
  /** Postgres URL (required). */
  databaseUrl: string;
  /**
   * Postgres URL that bypasses a transaction pooler (PgBouncer), for what needs
   * a session of its own: the dashboard's `LISTEN`, and BullMQ's PostgreSQL
   * backend (its `LISTEN` and locks). Default `databaseUrl`.
   */
  databaseDirectUrl?: string;
  /** Whether hot statements run as named prepared statements. Default true; false behind PgBouncer < 1.21. */
  preparedStatements?: boolean;
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
  /** Browser session lifetimes. Default idle 8 h, absolute 7 days. */
  sessions?: SessionOptions;
  /** OpenTelemetry tracing of createRun, the queue calls and (for the workers it creates) every step attempt. Default none (off). */
  tracing?: Tracing;
  /** Finished runs older than this many days are deleted by retention (`prune`, `startMaintenance`); 0 keeps everything. Default 30. */
  retentionDays?: number;
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
  /** Browser sessions made from API keys at `/login` (create, verify, delete). */
  readonly sessions: SessionStore;
  /** The queues as the app shell sees them: backend, job counts, Bull Board's queue objects. */
  readonly queues: QueueInspector;
  /** The read queries of the runs dashboard. */
  readonly dashboardQueries: DashboardQueries;
  /** Cron schedules (CONTRACT §8). */
  readonly schedules: ScheduleStore;
  /** Concurrency keys: admission, promotion, and the gauges `/metrics` reads. */
  readonly flow: FlowControl;
  private readonly sql: Sql;
  private readonly signals: SignalService;

  private constructor(
    private readonly options: DroverOptions,
    private readonly ds: DataSource,
    private readonly backend: QueueBackend,
    private readonly logger: Logger,
  ) {
    this.sql = Sql.fromDataSource(ds, options.preparedStatements ?? true);
    this.metrics = options.metrics ?? new Metrics();
    this.apiKeys = new ApiKeyStore(this.sql);
    this.sessions = new SessionStore(this.sql, options.sessions);
    this.queues = new QueueInspector(backend);
    this.workflows = new WorkflowRegistry(this.sql);
    this.workers = new WorkerRegistry(this.sql);
    this.dashboardQueries = new DashboardQueries(this.sql);
    this.flow = new FlowControl(this.sql, logger);
    const dispatcher = new Dispatcher(backend, logger, this.flow);
    this.runs = new RunService(this.sql, new RunStore(this.sql), this.workflows, dispatcher, logger, this.metrics, { maxInputBytes: options.maxInputBytes });
    this.signals = new SignalService(this.sql, new StepStore(this.sql), dispatcher);
    this.schedules = new ScheduleStore(this.sql, this.workflows);
    let lags: { at: number; value: Promise<Array<{ schedule: string; seconds: number }>> } | undefined;
    // Read at scrape time, shared for 5 s (an open /metrics must not cost a query per scrape).
    this.metrics.addScheduleLagSource(() => {
      if (!lags || Date.now() - lags.at > 5000) lags = { at: Date.now(), value: this.schedules.lags() };
      lags.value.catch(() => undefined);
      return lags.value;
    });
  }

  /** Creates a cron schedule (`invalid_schedule`, `unknown_workflow`, `already_exists`). */
  createSchedule(definition: unknown, options: ActorOptions = {}): Promise<ScheduleView> {
    return this.schedules.create(definition, options.actor ?? 'client');
  }

  /** Every schedule (a workspace-limited caller sees its workspaces' only). */
  listSchedules(access: AccessOptions = {}): Promise<ScheduleView[]> {
    return this.schedules.list(access.workspaces ?? null);
  }

  /** One schedule with its next fire time; `not_found`. */
  getSchedule(name: string, access: AccessOptions = {}): Promise<ScheduleView> {
    return this.schedules.get(name, access.workspaces ?? null);
  }

  /** Deletes a schedule (its runs stay); `not_found`. */
  deleteSchedule(name: string, options: ActorOptions = {}): Promise<ScheduleView> {
    return this.schedules.delete(name, options.actor ?? 'client');
  }

  /** Pauses a schedule: no tick fires until it is resumed. */
  pauseSchedule(name: string, options: ActorOptions = {}): Promise<ScheduleView> {
    return this.schedules.setPaused(name, true, options.actor ?? 'client');
  }

  /** Resumes a schedule from now (ticks missed while paused do not fire). */
  resumeSchedule(name: string, options: ActorOptions = {}): Promise<ScheduleView> {
    return this.schedules.setPaused(name, false, options.actor ?? 'client');
  }

  /** One retention pass now (what `drover prune` runs); `ran: false` when another process is in one. */
  prune(options: RetentionOptions = {}): Promise<RetentionReport> {
    return new Retention({ sql: this.sql, logger: this.logger, metrics: this.metrics, directUrl: this.options.databaseDirectUrl }, { retentionDays: this.options.retentionDays, ...options }).prune();
  }

  /** Starts the schedule tick and retention in this process (`drover server` does); stop it before `close()`. */
  startMaintenance(options: MaintenanceOptions = {}): Maintenance {
    const retention = options.retention === false ? false : { retentionDays: this.options.retentionDays, ...options.retention };
    const maintenance = new Maintenance({ sql: this.sql, runs: this.runs, logger: this.logger, metrics: this.metrics, directUrl: this.options.databaseDirectUrl }, { ...options, retention });
    maintenance.start();
    return maintenance;
  }

  /** The `ctx.log` lines of a run's step, oldest first, a page at a time; `not_found` for an unknown run or step. */
  async getStepLogs(runId: string, stepName: string, query: StepLogQuery = {}, access: AccessOptions = {}): Promise<StepLogPage> {
    await this.requireVisible(runId, access);
    return readStepLogs(this.sql, runId, stepName, query);
  }

  /**
   * The elements of a run's map step by index, a page at a time (`status`,
   * `limit` ≤ 1000 default 100, `cursor`); `not_found` for an unknown run or
   * step, `not_a_map_step` for a step of another kind.
   */
  async listMapElements(runId: string, stepName: string, query: MapElementQuery = {}, access: AccessOptions = {}): Promise<MapElementPage> {
    await this.requireVisible(runId, access);
    return listMapElements(this.sql, runId, stepName, query);
  }

  /** Connects to Postgres (migrations must have been applied) and the queue backend. */
  static async connect(options: DroverOptions): Promise<Drover> {
    if (!options?.databaseUrl) throw new ConfigError('Drover.connect: databaseUrl is required');
    resolveSessionOptions(options.sessions); // throws on bad lifetimes before any connection opens
    const logger = options.logger ?? silentLogger;
    const ds = createDataSource({ url: options.databaseUrl, poolSize: options.poolSize, applicationName: 'drover' });
    await ds.initialize();
    const backend = new QueueBackend({ databaseUrl: options.databaseDirectUrl ?? options.databaseUrl, redisUrl: options.redisUrl, namespace: options.namespace, logger, telemetry: options.tracing?.bullmq() });
    return new Drover(options, ds, backend, logger);
  }

  /** The tracing this Drover was given (undefined: off). */
  get tracing(): Tracing | undefined {
    return this.options.tracing;
  }

  /** Starts a run (or returns the existing one for a seen idempotency key). */
  async createRun(request: CreateRunRequest, options: ActorOptions = {}): Promise<RunView> {
    return (await this.submitRun(request, options)).run;
  }

  /**
   * Starts a run of a typed workflow (or of a workflow named by a string):
   * the input is checked against the workflow's schema here (`InvalidInputError`),
   * and the handle's `result()` resolves the run's typed output, or rejects
   * with `RunFailedError` when the run failed or was cancelled.
   */
  async start<W extends TypedWorkflow<string, any, any>>(workflow: W | W['name'], ...[input, options]: StartArgs<W, StartOptions & ActorOptions>): Promise<RunHandle<WorkflowOutput<W>, RunView>> {
    const name = typeof workflow === 'string' ? workflow : workflow.name;
    if (isWorkflowBuilder(workflow)) {
      const issue = workflow.checkInput(input ?? {});
      if (issue) throw new InvalidInputError(name, issue.path, issue.message);
    }
    const { actor, ...rest } = options ?? {};
    const run = await this.createRun({ ...rest, workflow: name, input: (input ?? {}) as Record<string, unknown> }, { actor });
    return {
      id: run.id,
      run,
      result: async (wait = {}) => outputOfRun<WorkflowOutput<W>>(await this.waitForRun(run.id, wait)),
    };
  }

  /** Like `createRun`, also telling whether the run was created now. `workspaces` limits where (see `AccessOptions`). */
  async submitRun(request: CreateRunRequest, options: ActorOptions & AccessOptions = {}): Promise<{ run: RunView; created: boolean }> {
    const create = async () => {
      const result = await this.runs.createRun(limitCreate(request, options.workspaces), options.actor ?? 'client');
      if (result.created) this.metrics.runsCreated.inc();
      return result;
    };
    const tracing = this.options.tracing;
    if (!tracing) return create();
    // The root of the run's trace (or a child of the caller's): the steps' jobs carry it on.
    return tracing.inSpan('drover.createRun', { 'drover.workflow': String(request?.workflow ?? '') }, async (span) => {
      const result = await create();
      span.setAttributes({ 'drover.run.id': result.run.id, 'drover.run.created': result.created });
      return result;
    });
  }

  /** Starts many runs; each item succeeds or fails on its own (an item outside `workspaces` fails the whole call: `forbidden`). */
  async createRuns(requests: CreateRunRequest[], options: ActorOptions & AccessOptions = {}): Promise<BatchCreateResult> {
    if (!Array.isArray(requests)) throw new TypeError('createRuns expects an array of run requests');
    if (this.options.tracing) {
      return this.options.tracing.inSpan('drover.createRuns', { 'drover.runs.requested': requests.length }, () => this.createRunsNow(requests, options));
    }
    return this.createRunsNow(requests, options);
  }

  private async createRunsNow(requests: CreateRunRequest[], options: ActorOptions & AccessOptions): Promise<BatchCreateResult> {
    const limited = requests.map((r, i) => limitCreate(r, options.workspaces, `runs[${i}]`));
    const items: BatchCreateResult['items'] = [];
    // Chunks keep one transaction's statements to a sensible size.
    for (let start = 0; start < limited.length; start += 1000) {
      const outcomes = await this.runs.createRuns(limited.slice(start, start + 1000), options.actor ?? 'client');
      outcomes.forEach((o, i) => items.push(o.ok
        ? { index: start + i, id: o.run.id, ...(o.created ? {} : { existing: true }) }
        : { index: start + i, error: { code: o.error.code, message: o.error.message, ...(o.error.details ? { details: o.error.details } : {}) } }));
    }
    const created = items.filter((i) => i.id && !i.existing).length;
    this.metrics.runsCreated.inc(created);
    return { created, failed: items.filter((i) => i.error).length, items };
  }

  /** A run with its steps; `not_found` also for a run outside `access.workspaces`. */
  async getRun(id: string, access: AccessOptions = {}): Promise<RunWithSteps> {
    await this.requireVisible(id, access);
    return decorateRun(this.sql, await this.runs.getRun(id));
  }

  /** Runs, newest first; with `access.workspaces` only theirs (another workspace asked for gives an empty page). */
  async listRuns(query: ListRunsQuery = {}, access: AccessOptions = {}): Promise<Page<RunListItem>> {
    const workspaces = access.workspaces ?? null;
    if (workspaces && typeof query.workspace === 'string' && query.workspace !== '' && !workspaces.includes(query.workspace)) {
      // Empty, as for a workspace without runs: the answer does not tell whether the workspace exists
      // (the query is still validated: a bad cursor or limit is a 400 as anywhere).
      return this.runs.listRuns(query, []);
    }
    return this.runs.listRuns(query, workspaces);
  }

  /** The audit trail of a run, oldest first; `not_found` also for a run outside `access.workspaces`. */
  async getAudit(id: string, access: AccessOptions = {}): Promise<{ items: AuditEventView[] }> {
    await this.requireVisible(id, access);
    return this.runs.getAudit(id);
  }

  /** Cancels an open run; `not_found` also for a run outside `options.workspaces`. */
  async cancelRun(id: string, options: ActorOptions & AccessOptions = {}): Promise<RunView> {
    await this.requireVisible(id, options);
    const run = await this.runs.cancelRun(id, options.actor ?? 'client');
    // Its child runs (a `run` step started them) are cancelled after the parent committed (each run row on its own).
    await cancelChildren(this.sql, id, (child) => this.runs.cancelRun(child, options.actor ?? 'client'), this.logger);
    return run;
  }

  /**
   * Sends a signal to a run (CONTRACT §7): kept with the run, the first of a
   * name ends the steps waiting for it with `payload`. `not_found` (also
   * outside `options.workspaces`), `invalid_state` for a finished run.
   */
  async signal(runId: string, name: string, payload?: unknown, options: ActorOptions & AccessOptions = {}): Promise<SignalView> {
    await this.requireVisible(runId, options);
    return this.signals.send(runId, name, payload, options.actor ?? 'client');
  }

  /** Resumes a failed run; `not_found` also for a run outside `options.workspaces`. */
  async retryRun(id: string, options: ActorOptions & AccessOptions = {}): Promise<RunView> {
    await this.requireVisible(id, options);
    return this.runs.retryRun(id, options.actor ?? 'client');
  }

  /** Throws `not_found` when a workspace limit hides the run (a run's workspace never changes). */
  private async requireVisible(id: string, access: AccessOptions): Promise<void> {
    if (!access.workspaces) return;
    const workspace = await this.runs.workspaceOf(id);
    if (workspace === undefined || !workspaceAllowed(access.workspaces, workspace)) throw notFound('run');
  }

  /** Audits operators' actions on the queues (Bull Board in read-write mode) under `options.actor`. */
  recordQueueEvents(events: QueueEvent[], options: ActorOptions = {}): Promise<void> {
    return withInfraRetry(() => appendQueueEvents(this.sql, options.actor ?? 'client', events), { maxElapsedMs: 5000 });
  }

  /** The latest operators' actions on whole queues (audit events without a run), newest first. */
  listQueueEvents(limit = 100): Promise<QueueEventView[]> {
    return readQueueEvents(this.sql, limit);
  }

  /**
   * Starts a new run of a run's workflow (its latest version) with the same
   * input, workspace and priority; its `run.created` event says `{rerunOf}`.
   */
  async rerunRun(id: string, options: ActorOptions & AccessOptions = {}): Promise<RunView> {
    await this.requireVisible(id, options);
    return this.runs.rerunRun(id, options.actor ?? 'client').then((run) => {
      this.metrics.runsCreated.inc();
      return run;
    });
  }

  /** The runs with audit events after an event id (null: a baseline, the current highest id and the events just before it), for the dashboard's live feed. */
  runsChangedSince(afterId: string | null): Promise<RunsChanged> {
    return runsChangedSince(this.sql, afterId);
  }

  /** A new, unconnected Postgres client on drover's database (for a LISTEN connection the caller owns). */
  createListenClient(): Client {
    // LISTEN needs a session of its own: not through a transaction pooler.
    const client = new Client({ connectionString: this.options.databaseDirectUrl ?? this.options.databaseUrl, application_name: 'drover-listen' });
    return client;
  }

  /** Polls until the run is terminal; throws `WaitTimeoutError` past `timeoutMs` (default 60 000). */
  async waitForRun(id: string, options: WaitOptions = {}): Promise<RunWithSteps> {
    // Polling rides out a Postgres restart; other errors (not_found) end the wait.
    await pollRun((deadline) => withInfraRetry(() => this.runs.getRunSummary(id), { maxElapsedMs: Math.max(1000, deadline - Date.now()) }),
      options, { pollMs: 25, maxPollMs: 500 });
    return decorateRun(this.sql, await this.runs.getRun(id));
  }

  /** Registers workflow definitions (workers do this at start-up). */
  async registerWorkflows(workflows: Array<WorkflowDefinition | CompilableWorkflow>): Promise<void> {
    await this.workflows.register(compileWorkflows(workflows, {}).map((w) => resolveWorkflow(w)));
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
      databaseDirectUrl: this.options.databaseDirectUrl, preparedStatements: this.options.preparedStatements,
      logger: this.logger, metrics: this.metrics, tracing: this.options.tracing, ...options,
    });
  }

  /** Whether drover's migrations have run on this database (the schema exists). */
  async isMigrated(): Promise<boolean> {
    const [row] = await this.sql.query<{ runs: string | null }>(`SELECT to_regclass('drover.runs')::text AS runs`);
    return Boolean(row?.runs);
  }

  /** What the alerting gauges report (oldest queued step, workers alive, stuck runs), read now. */
  readHealth(): Promise<HealthReading> {
    return readHealth(this.sql);
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
