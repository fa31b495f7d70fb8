import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueJobCounts } from '../queue/queue-inspector';
import type { HealthReading } from './health-readings';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The BullMQ job states the `drover_queue_jobs` gauge reports. */
export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children'] as const;

/** The keys-at-limit gauge, by name: the alert rules (deploy/prometheus/drover-alerts.yaml) use it. */
export const FLOW_KEYS_AT_LIMIT_METRIC = 'drover_flow_keys_at_limit';

/** A function that reads the health gauges at scrape time (see `readHealth`). */
export type HealthSource = () => Promise<HealthReading>;

/** A function that reads job counts at scrape time. */
export type QueueJobSource = () => Promise<QueueJobCounts>;

/** A function that reads, at scrape time, whether each queue is paused (labelled with the drover queue name). */
export type QueuePausedSource = () => Promise<Array<{ queue: string; paused: boolean }>>;

/** A function that reads, at scrape time, the flow-control gauges (waiting runs and steps, keys at their limit). */
export type FlowGaugeSource = () => Promise<{
  waiting: Array<{ workflow: string; kind: 'run' | 'step'; count: number }>;
  keysAtLimit: Array<{ workflow: string; count: number }>;
}>;

/** Options of `Metrics`. */
export interface MetricsOptions {
  /** The Prometheus registry to register into. Default: a registry of its own. */
  registry?: Registry;
  /** Also collect the standard process and Node.js metrics (`process_cpu_seconds_total`, `nodejs_*`). Default true. */
  processMetrics?: boolean;
}

/**
 * drover's Prometheus metrics, injected (no module-level singletons): a
 * `Drover` makes one unless given one and hands it to the workers it creates,
 * so `drover start` reports everything its process did on one `/metrics`, and
 * two Drovers or workers in one process can report apart. Counters are
 * incremented where the transition happens (a worker, the reconciler, the API).
 * The `queue` label is always the drover queue name the API shows (`default`),
 * never the BullMQ name with its namespace prefix.
 */
export class Metrics {
  readonly registry: Registry;
  readonly runsCreated: Counter;
  readonly runsFinished: Counter<'status'>;
  readonly stepsFinished: Counter<'status' | 'queue'>;
  readonly attemptsFailed: Counter<'queue'>;
  readonly transitionsDropped: Counter<'transition'>;
  readonly stepDuration: Histogram<'queue'>;
  readonly queueWait: Histogram<'queue'>;
  readonly reconcilerRepairs: Counter<'kind'>;
  readonly infraRetries: Counter;
  /** Jobs dropped before they ran because they did not match their step (`JobRejection`). */
  readonly jobsRejected: Counter<'reason'>;
  /** Rows deleted by retention, by kind (`runs`, `steps`, `step_logs`, `audit_events`, `workers`). */
  readonly retentionDeleted: Counter<'kind'>;
  private readonly scheduleLagSources = new Set<() => Promise<Array<{ schedule: string; seconds: number }>>>();
  private readonly queueSources = new Set<QueueJobSource>();
  private readonly pausedSources = new Set<QueuePausedSource>();
  private readonly healthSources = new Set<HealthSource>();
  private readonly flowSources = new Set<FlowGaugeSource>();

  constructor(options: MetricsOptions = {}) {
    const registry = (this.registry = options.registry ?? new Registry());
    const registers = [registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
    this.runsCreated = new Counter({ name: 'drover_runs_created_total', help: 'Runs created', registers });
    this.runsFinished = new Counter({ name: 'drover_runs_finished_total', help: 'Runs that reached a final status, by status', labelNames: ['status'], registers });
    this.stepsFinished = new Counter({ name: 'drover_steps_finished_total', help: 'Steps that reached a final status in this process, by status', labelNames: ['status', 'queue'], registers });
    this.attemptsFailed = new Counter({ name: 'drover_step_attempts_failed_total', help: 'Failed step attempts (retried or final)', labelNames: ['queue'], registers });
    this.transitionsDropped = new Counter({ name: 'drover_transitions_dropped_total', help: 'Results dropped by the fence (another actor moved the step first)', labelNames: ['transition'], registers });
    this.stepDuration = new Histogram({ name: 'drover_step_duration_seconds', help: 'Processor run time of an attempt', labelNames: ['queue'], buckets: DURATION_BUCKETS, registers });
    this.queueWait = new Histogram({ name: 'drover_step_queue_wait_seconds', help: 'Time from queued to started', labelNames: ['queue'], buckets: DURATION_BUCKETS, registers });
    this.reconcilerRepairs = new Counter({ name: 'drover_reconciler_repairs_total', help: 'Repairs made by the reconciler, by kind', labelNames: ['kind'], registers });
    this.infraRetries = new Counter({ name: 'drover_infra_retries_total', help: 'Operations retried after a transient Postgres or Redis error', registers });
    this.jobsRejected = new Counter({ name: 'drover_jobs_rejected_total', help: 'Jobs dropped before they ran because their id or data did not match a live step of their run, by reason', labelNames: ['reason'], registers });
    this.retentionDeleted = new Counter({ name: 'drover_retention_deleted_total', help: 'Rows deleted by retention in this process, by kind', labelNames: ['kind'], registers });
    const lagSources = this.scheduleLagSources;
    new Gauge({
      name: 'drover_schedule_lag_seconds',
      help: 'How late the last tick of each schedule fired (its run was made this long after its fire time), read at scrape time',
      labelNames: ['schedule'],
      registers,
      async collect() {
        this.reset();
        const results = await Promise.allSettled([...lagSources].map((s) => s()));
        for (const result of results) {
          if (result.status !== 'fulfilled') continue;
          for (const { schedule, seconds } of result.value) this.set({ schedule }, seconds);
        }
      },
    });
    const sources = this.queueSources;
    new Gauge({
      name: 'drover_queue_jobs',
      help: 'Jobs in each step queue (drover queue name, as the API shows it) by BullMQ state, read at scrape time',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        this.reset();
        const results = await Promise.allSettled([...sources].map((s) => s()));
        for (const result of results) {
          // A queue that does not answer leaves its series out rather than failing the scrape.
          if (result.status !== 'fulfilled') continue;
          for (const { queue, state, count } of result.value) this.set({ queue, state }, count);
        }
      },
    });
    // Both flow gauges come from one read per scrape (the source is shared and cached by its owner).
    const flowSources = this.flowSources;
    const readFlow = async () => (await Promise.allSettled([...flowSources].map((s) => s())))
      .flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    new Gauge({
      name: 'drover_flow_waiting',
      help: 'Runs (kind="run") and steps (kind="step") waiting on a concurrency key, by workflow, read at scrape time',
      labelNames: ['workflow', 'kind'],
      registers,
      async collect() {
        this.reset();
        for (const value of await readFlow()) for (const w of value.waiting) this.set({ workflow: w.workflow, kind: w.kind }, w.count);
      },
    });
    new Gauge({
      name: FLOW_KEYS_AT_LIMIT_METRIC,
      help: 'Concurrency keys whose running runs or steps are at the key\'s limit, by workflow, read at scrape time',
      labelNames: ['workflow'],
      registers,
      async collect() {
        this.reset();
        for (const value of await readFlow()) for (const k of value.keysAtLimit) this.set({ workflow: k.workflow }, k.count);
      },
    });
    const pausedSources = this.pausedSources;
    new Gauge({
      name: 'drover_queue_paused',
      help: 'Whether a step queue (drover queue name) is paused in BullMQ (1) or not (0), read at scrape time; workers take no job from a paused queue',
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        const results = await Promise.allSettled([...pausedSources].map((s) => s()));
        for (const result of results) {
          if (result.status !== 'fulfilled') continue;
          for (const { queue, paused } of result.value) this.set({ queue }, paused ? 1 : 0);
        }
      },
    });
    // One read serves the three health gauges of a scrape: they collect at once and share the read in flight.
    const healthSources = this.healthSources;
    let healthRead: Promise<HealthReading[]> | undefined;
    const readHealthOnce = (): Promise<HealthReading[]> => {
      healthRead ??= Promise.allSettled([...healthSources].map((s) => s()))
        .then((rs) => rs.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])))
        .finally(() => { healthRead = undefined; });
      return healthRead;
    };
    new Gauge({
      name: 'drover_oldest_queued_step_age_seconds',
      help: 'Seconds since the oldest queued step of each queue could have started (after its delay or backoff), read from Postgres at scrape time; absent for a queue with no such step',
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        for (const reading of await readHealthOnce()) for (const { queue, seconds } of reading.oldestQueuedStepAgeSeconds) this.set({ queue }, seconds);
      },
    });
    new Gauge({
      name: 'drover_workers',
      help: 'Registered workers by status: active (heartbeat within 30 s) or stale (registered active, heartbeat older), read from Postgres at scrape time',
      labelNames: ['status'],
      registers,
      async collect() {
        this.reset();
        for (const reading of await readHealthOnce()) {
          this.set({ status: 'active' }, reading.workers.active);
          this.set({ status: 'stale' }, reading.workers.stale);
        }
      },
    });
    new Gauge({
      name: 'drover_runs_stuck',
      help: 'Open runs older than a minute with no step queued or running (nothing can move them on), read from Postgres at scrape time',
      registers,
      async collect() {
        this.reset();
        for (const reading of await readHealthOnce()) this.set(reading.runsStuck);
      },
    });
  }

  /**
   * Adds a source of the health gauges, read at each scrape:
   * `drover_oldest_queued_step_age_seconds{queue}`, `drover_workers{status}`
   * and `drover_runs_stuck`. The API server adds one (servers report them, workers do not).
   * @returns a function that removes the source.
   */
  addHealthSource(source: HealthSource): () => void {
    this.healthSources.add(source);
    return () => {
      this.healthSources.delete(source);
    };
  }

  /**
   * Adds a source to the `drover_schedule_lag_seconds{schedule}` gauge (read from the schedules table at each scrape).
   * @returns a function that removes the source.
   */
  addScheduleLagSource(source: () => Promise<Array<{ schedule: string; seconds: number }>>): () => void {
    this.scheduleLagSources.add(source);
    return () => {
      this.scheduleLagSources.delete(source);
    };
  }

  /**
   * Adds a source to the `drover_flow_waiting{workflow,kind}` and
   * `drover_flow_keys_at_limit{workflow}` gauges, read at each scrape.
   * @returns a function that removes the source.
   */
  addFlowGaugeSource(source: FlowGaugeSource): () => void {
    this.flowSources.add(source);
    return () => {
      this.flowSources.delete(source);
    };
  }

  /**
   * Adds a source to the `drover_queue_paused{queue}` gauge (1 paused, 0 not),
   * read from the queues at each scrape.
   * @returns a function that removes the source.
   */
  addQueuePausedSource(source: QueuePausedSource): () => void {
    this.pausedSources.add(source);
    return () => {
      this.pausedSources.delete(source);
    };
  }

  /**
   * Adds a source to the `drover_queue_jobs{queue,state}` gauge, which is read
   * from the queues at each scrape (not kept up to date in between).
   * @returns a function that removes the source.
   */
  addQueueJobSource(source: QueueJobSource): () => void {
    this.queueSources.add(source);
    return () => {
      this.queueSources.delete(source);
    };
  }
}
