import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import type { Worker as BullWorker } from 'bullmq';
import type { DataSource } from 'typeorm';
import { runAppMigrations } from '../db/app-migrations';
import { createDataSource, type DatabaseOptions } from '../db/data-source';
import { Sql } from '../db/sql';
import { resolveModule } from '../workflows/definitions';
import { Dispatcher } from '../queue/dispatcher';
import { FlowControl } from '../flow/flow-control';
import { ConfigError } from '../errors';
import { silentLogger, type Logger } from '../telemetry/logger';
import { Metrics } from '../telemetry/metrics';
import type { Tracing } from '../telemetry/tracing';
import { QueueBackend } from '../queue/queue-backend';
import { Reconciler, type ReconcilerOptions } from '../maintenance/reconciler';
import { StepExecutor } from '../steps/step-executor';
import { StepStore } from '../steps/step-store';
import type { CompilableWorkflow, DroverModule, Processor, ResolvedWorkflow, WorkflowDefinition } from '../types';
import { VERSION } from '../version';
import { WorkerRegistry } from './worker-registry';
import { WorkflowRegistry } from '../workflows/workflow-registry';
import { RunService } from '../runs/run-service';
import { RunStore } from '../runs/run-store';
import { BUILT_IN_PROCESSORS } from '../waits/kinds';
import { OnFailure } from '../waits/on-failure';
import { WaitExecutor } from '../waits/wait-executor';
import { WaitStore } from '../waits/wait-store';
import { Maintenance, type MaintenanceOptions } from '../maintenance/maintenance';
import { resolveSchedule, type ResolvedSchedule, type ScheduleDefinition } from '../schedules/schedule-definition';
import { ScheduleStore } from '../schedules/schedule-store';

/** Options of a worker process. */
export interface WorkerOptions {
  /** Postgres URL (required). */
  databaseUrl: string;
  /** Postgres URL bypassing a transaction pooler, for BullMQ's PostgreSQL backend (its `LISTEN` and locks). Default `databaseUrl`. */
  databaseDirectUrl?: string;
  /** Whether hot statements run as named prepared statements. Default true; false behind PgBouncer < 1.21. */
  preparedStatements?: boolean;
  /** Redis URL; unset: BullMQ's PostgreSQL backend in the same database. */
  redisUrl?: string;
  /** Queue name prefix shared with the producers. Default `drover`. */
  namespace?: string;
  /** The user module (workflows and processors). */
  module?: DroverModule;
  /** Workflows (plain definitions or typed workflows), in addition to the module's. */
  workflows?: Array<WorkflowDefinition | CompilableWorkflow>;
  /** Processors, in addition to the module's. */
  processors?: Record<string, Processor>;
  /** Your own TypeORM entities (in your own schema), for `ctx.transaction`'s manager. Default none. */
  entities?: DatabaseOptions['entities'];
  /** Queues to consume. Default: every queue its workflows use. */
  queues?: string[];
  /** Steps run at once, per queue. Default 10. */
  concurrency?: number;
  /** Heartbeat period. Default 5 000 ms. */
  heartbeatIntervalMs?: number;
  /** How long `close()` waits for active steps. Default 30 000 ms. */
  gracePeriodMs?: number;
  /** How often active steps check they are still theirs (cancel, takeover). Default 500 ms. */
  leaseCheckIntervalMs?: number;
  /**
   * An attempt that ends within this many ms writes its start together with its
   * outcome: one row update and one audit event (`step.succeeded`,
   * `step.attempt_failed` or `step.failed` carrying `startedAt`, `attempt`,
   * `worker`). A longer attempt is written `running` once it has run this long.
   * 0 writes every start at once. Default 1 000 ms (`DROVER_RECORD_START_AFTER_MS`).
   */
  recordStartAfterMs?: number;
  /** BullMQ lock duration of an active job. Default 30 000 ms. */
  lockDurationMs?: number;
  /** BullMQ stalled-job check period. Default 30 000 ms. */
  stalledIntervalMs?: number;
  /** The reconciler runs in every worker (one pass at a time across processes). `false` turns it off here. */
  reconciler?: false | ReconcilerOptions;
  /** Schedules, in addition to the module's; stored (created or updated) at start. */
  schedules?: ScheduleDefinition[];
  /** The schedule tick and retention run in every worker (each safe across processes). `false` turns both off here. */
  maintenance?: false | MaintenanceOptions;
  /** A step output larger than this many bytes of JSON fails the step without retries. Default 1 MiB (`DROVER_MAX_OUTPUT_BYTES`). */
  maxOutputBytes?: number;
  /** Registry id. Default `<hostname>-<pid>-<random>`. */
  id?: string;
  /** Postgres pool size. Default concurrency + 4. */
  poolSize?: number;
  logger?: Logger;
  /** Where counters go (`Drover.createWorker` passes the Drover's). Default: a `Metrics` of its own. */
  metrics?: Metrics;
  /** OpenTelemetry tracing: a span per step attempt, BullMQ's spans, Postgres statements (`Drover.createWorker` passes the Drover's). Default none (off). */
  tracing?: Tracing;
}

type WorkerState = 'idle' | 'running' | 'closing' | 'closed';

/** How long `close()` lets active steps finish by default (`WorkerOptions.gracePeriodMs`). */
export const DEFAULT_GRACE_PERIOD_MS = 30_000;
/** After the grace period, how long `close()` waits for abandoned jobs to go back to the queue. */
export const ABANDON_WAIT_MS = 5000;

/**
 * A worker process: consumes step jobs from its queues, registers its
 * workflows and itself, heartbeats, watches the leases of its active steps,
 * runs the reconciler, and shuts down gracefully.
 */
export class DroverWorker {
  readonly id: string;
  readonly queues: string[];
  readonly concurrency: number;
  private state: WorkerState = 'idle';
  private readonly logger: Logger;
  private readonly workflows: ResolvedWorkflow[];
  private readonly processors: Record<string, Processor>;
  private ds?: DataSource;
  private sql?: Sql;
  private backend?: QueueBackend;
  private executor?: StepExecutor;
  private registry?: WorkerRegistry;
  private readonly metrics: Metrics;
  private reconciler?: Reconciler;
  private maintenance?: Maintenance;
  private readonly schedules: ResolvedSchedule[];
  private bullWorkers: BullWorker[] = [];
  /** Periodic tasks that run until the last attempt settles; the reconciler stops first. */
  private timers: NodeJS.Timeout[] = [];
  /** Periodic tasks in progress (awaited before the connections close). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing?: Promise<void>;
  /** Set once its queue connections are up (a store that never answered has nothing to drain). */
  private consuming = false;

  constructor(private readonly options: WorkerOptions) {
    if (!options.databaseUrl) throw new ConfigError('createWorker: databaseUrl is required');
    const resolved = resolveModule({
      workflows: [...(options.module?.workflows ?? []), ...(options.workflows ?? [])],
      processors: { ...(options.module?.processors ?? {}), ...(options.processors ?? {}) },
    });
    this.workflows = resolved.workflows;
    this.processors = resolved.processors;
    this.concurrency = options.concurrency ?? 10;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1 || this.concurrency > 10_000) {
      throw new ConfigError(`concurrency must be a whole number from 1 to 10000 (got ${options.concurrency})`);
    }
    const queues = options.queues ?? [...new Set(['default', ...this.workflows.flatMap((w) => w.steps.map((s) => s.queue))])];
    if (queues.length === 0) throw new ConfigError('a worker needs at least one queue');
    for (const q of queues) if (!/^[a-z0-9][a-z0-9_-]{0,63}$/.test(q)) throw new ConfigError(`invalid queue name "${q}"`);
    this.queues = queues;
    this.id = options.id ?? `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.logger = (options.logger ?? silentLogger).child({ worker: this.id });
    this.metrics = options.metrics ?? new Metrics();
    const r = options.recordStartAfterMs;
    if (r !== undefined && (!Number.isInteger(r) || r < 0 || r > 3_600_000)) {
      throw new ConfigError(`recordStartAfterMs must be a whole number of ms from 0 to 3600000 (got ${r})`);
    }
    this.schedules = [...(options.module?.schedules ?? []), ...(options.schedules ?? [])].map((s) => resolveSchedule(s));
  }

  /** Connects, registers, and starts consuming. Resolves once the worker is consuming. */
  async run(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`worker is ${this.state}`);
    this.state = 'running';
    const o = this.options;
    const entities = [...Object.values(o.entities ?? {}), ...(o.module?.entities ?? [])] as DatabaseOptions['entities'];
    this.ds = createDataSource({ url: o.databaseUrl, poolSize: o.poolSize ?? this.concurrency + 4, applicationName: 'drover-worker', entities });
    await this.ds.initialize();
    this.sql = Sql.fromDataSource(this.ds, o.preparedStatements ?? true);
    const mod = o.module;
    if (mod?.migrations?.length && mod.migrationsTableName) {
      // The app's own tables first (its migrations, its own table), so its steps find them.
      const applied = await runAppMigrations(o.databaseDirectUrl ?? o.databaseUrl, this.sql, { entities: mod.entities, migrations: mod.migrations, migrationsTableName: mod.migrationsTableName });
      if (applied.length) this.logger.info({ applied }, `applied ${applied.length} app migration(s)`);
    }
    // An idle connection dropped by the server (a restart; our own shutdown): the pool replaces it.
    this.sql.pool.on('error', (err) => {
      if (this.state === 'running') this.logger.warn({ reason: err.message }, 'idle Postgres connection lost');
    });
    const backend = new QueueBackend({ databaseUrl: o.databaseDirectUrl ?? o.databaseUrl, redisUrl: o.redisUrl, namespace: o.namespace, logger: this.logger, telemetry: o.tracing?.bullmq() });
    this.backend = backend;
    const store = new StepStore(this.sql);
    const dispatcher = new Dispatcher(this.backend, this.logger, new FlowControl(this.sql, this.logger));
    await new WorkflowRegistry(this.sql).register(this.workflows);
    this.registry = new WorkerRegistry(this.sql);
    await this.registry.register({ id: this.id, queues: this.queues, concurrency: this.concurrency, version: VERSION, processors: [...Object.keys(this.processors), ...BUILT_IN_PROCESSORS] });
    const runs = new RunService(this.sql, new RunStore(this.sql), new WorkflowRegistry(this.sql), dispatcher, this.logger, this.metrics);
    const waits = new WaitExecutor({
      store: new WaitStore(this.sql, store), dispatcher, runs, onFailure: new OnFailure(this.sql, dispatcher, `worker:${this.id}`), workerId: this.id, logger: this.logger,
    });
    this.executor = new StepExecutor({
      sql: this.sql, store, dispatcher, processors: this.processors, workerId: this.id, logger: this.logger, metrics: this.metrics, dataSource: this.ds, waits,
      tracing: o.tracing, recordStartAfterMs: o.recordStartAfterMs, maxOutputBytes: o.maxOutputBytes,
    });
    if (this.schedules.length) await new ScheduleStore(this.sql, new WorkflowRegistry(this.sql)).syncModuleSchedules(this.schedules, `worker:${this.id}`);

    for (const queue of this.queues) {
      const worker = this.backend.createWorker(queue, this.executor.process, {
        concurrency: this.concurrency,
        lockDuration: o.lockDurationMs ?? 30_000,
        stalledInterval: o.stalledIntervalMs ?? 30_000,
        maxStalledCount: 5,
        autorun: false,
      });
      // An unreachable store is reported once per outage (no stack), other errors as they come.
      worker.on('error', (err) => {
        if (!backend.reportError(err)) this.logger.warn({ err, queue }, 'queue worker error');
      });
      worker.on('ready', () => backend.reportReachable());
      this.bullWorkers.push(worker);
    }
    for (const worker of this.bullWorkers) void worker.run().catch((err) => this.logger.error({ err }, 'queue worker stopped'));
    await Promise.all(this.bullWorkers.map((w) => w.waitUntilReady()));
    this.consuming = true;
    backend.reportReachable();

    this.every(o.heartbeatIntervalMs ?? 5000, () => this.registry!.heartbeat(this.id));
    this.every(o.leaseCheckIntervalMs ?? 500, () => this.checkLeases());
    if (o.reconciler !== false) {
      this.reconciler = new Reconciler({ sql: this.sql, backend: this.backend, store, dispatcher, logger: this.logger, metrics: this.metrics, queues: this.queues }, o.reconciler ?? {});
      this.reconciler.start();
    }
    if (o.maintenance !== false) {
      const runs = new RunService(this.sql, new RunStore(this.sql), new WorkflowRegistry(this.sql), dispatcher, this.logger, this.metrics, {});
      this.maintenance = new Maintenance({ sql: this.sql, runs, logger: this.logger, metrics: this.metrics, directUrl: o.databaseDirectUrl }, o.maintenance ?? {});
      this.maintenance.start();
    }
    this.logger.info({ queues: this.queues, concurrency: this.concurrency, backend: this.backend.kind }, 'worker started');
  }

  /**
   * Graceful shutdown: stop taking jobs, let active steps finish within the
   * grace period, then close connections. Heartbeats and lease checks go on
   * while it drains, so a cancel still aborts a running step. A step still
   * running at the deadline is abandoned without writing anything: its job goes
   * back to the queue and another worker takes the step over (the fence drops
   * whatever the abandoned attempt still does).
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.state === 'idle') {
      this.state = 'closed';
      return;
    }
    this.state = 'closing';
    await this.reconciler?.stop();
    await this.maintenance?.stop();
    const grace = this.options.gracePeriodMs ?? DEFAULT_GRACE_PERIOD_MS;
    // Closed while still waiting for an unreachable store: no job can be active, so do not wait for one.
    const drained = Promise.all(this.bullWorkers.map((w) => w.close(!this.consuming)));
    const timedOut = await Promise.race([drained.then(() => false), sleep(grace).then(() => true)]);
    if (timedOut) {
      this.logger.warn({ active: this.executor?.activeAttempts().length }, 'grace period over; abandoning active steps');
      this.executor?.abandonAll();
      await Promise.race([Promise.all(this.bullWorkers.map((w) => w.close(true))), sleep(ABANDON_WAIT_MS)]);
    }
    for (const t of this.timers) clearInterval(t);
    await Promise.all(this.inFlight);
    await this.registry?.markStopped(this.id).catch((err) => this.logger.warn({ err }, 'could not mark worker stopped'));
    await this.backend?.close();
    await this.ds?.destroy().catch(() => undefined);
    this.state = 'closed';
    this.logger.info('worker stopped');
  }

  /** Aborts active attempts whose step was cancelled or taken over elsewhere. */
  private async checkLeases(): Promise<void> {
    const active = this.executor?.activeAttempts().filter((a) => !a.dropped) ?? [];
    if (active.length === 0) return;
    // An unrecorded attempt (one-write path) holds its step while it is still `queued` as it read it
    // (or `running` under its lease: its late start write may have just committed).
    const rows = await this.sql!.query(`
      SELECT a.lease FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::int[]) AS a(id, lease, generation, seen_attempt)
       WHERE NOT EXISTS (SELECT 1 FROM drover.steps s WHERE s.id = a.id AND (s.status = 'running' AND s.lease = a.lease
               OR s.status = 'queued' AND s.generation = a.generation AND s.attempt = a.seen_attempt))`,
    [active.map((a) => a.stepId), active.map((a) => a.lease), active.map((a) => a.unrecorded?.generation ?? null),
      active.map((a) => a.unrecorded?.seenAttempt ?? null)]);
    // A step whose success we just recorded is not 'running' either; dropping it then is harmless.
    if (rows.length) this.executor!.dropLostLeases(new Set(rows.map((r) => r.lease)));
  }

  private every(ms: number, task: () => Promise<unknown>): void {
    let busy: Promise<unknown> | undefined;
    const timer = setInterval(() => {
      if (busy || (this.state !== 'running' && this.state !== 'closing')) return;
      const run: Promise<unknown> = task().catch((err) => this.logger.warn({ err }, 'periodic task failed')).finally(() => {
        busy = undefined;
        this.inFlight.delete(run);
      });
      busy = run;
      this.inFlight.add(run);
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** The registered workflows of this worker. */
  get registeredWorkflows(): ResolvedWorkflow[] {
    return this.workflows;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Creates a worker (call `run()` to start it). */
export function createWorker(options: WorkerOptions): DroverWorker {
  return new DroverWorker(options);
}
