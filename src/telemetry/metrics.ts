import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueJobCounts } from '../queue/queue-inspector';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The BullMQ job states the `drover_queue_jobs` gauge reports. */
export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children'] as const;

/** A function that reads job counts at scrape time. */
export type QueueJobSource = () => Promise<QueueJobCounts>;

/** Options of `Metrics`. */
export interface MetricsOptions {
  /** The Prometheus registry to register into. Default: a registry of its own. */
  registry?: Registry;
  /** Also collect the process metrics (`drover_process_*`). Default true. */
  processMetrics?: boolean;
}

/**
 * drover's Prometheus metrics, injected (no module-level singletons): a
 * `Drover` makes one unless given one and hands it to the workers it creates,
 * so `drover start` reports everything its process did on one `/metrics`, and
 * two Drovers or workers in one process can report apart. Counters are
 * incremented where the transition happens (a worker, the reconciler, the API).
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
  private readonly queueSources = new Set<QueueJobSource>();

  constructor(options: MetricsOptions = {}) {
    const registry = (this.registry = options.registry ?? new Registry());
    const registers = [registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'drover_process_' });
    this.runsCreated = new Counter({ name: 'drover_runs_created_total', help: 'Runs created', registers });
    this.runsFinished = new Counter({ name: 'drover_runs_finished_total', help: 'Runs that reached a final status, by status', labelNames: ['status'], registers });
    this.stepsFinished = new Counter({ name: 'drover_steps_finished_total', help: 'Steps that reached a final status in this process, by status', labelNames: ['status', 'queue'], registers });
    this.attemptsFailed = new Counter({ name: 'drover_step_attempts_failed_total', help: 'Failed step attempts (retried or final)', labelNames: ['queue'], registers });
    this.transitionsDropped = new Counter({ name: 'drover_transitions_dropped_total', help: 'Results dropped by the fence (another actor moved the step first)', labelNames: ['transition'], registers });
    this.stepDuration = new Histogram({ name: 'drover_step_duration_seconds', help: 'Processor run time of an attempt', labelNames: ['queue'], buckets: DURATION_BUCKETS, registers });
    this.queueWait = new Histogram({ name: 'drover_step_queue_wait_seconds', help: 'Time from queued to started', labelNames: ['queue'], buckets: DURATION_BUCKETS, registers });
    this.reconcilerRepairs = new Counter({ name: 'drover_reconciler_repairs_total', help: 'Repairs made by the reconciler, by kind', labelNames: ['kind'], registers });
    this.infraRetries = new Counter({ name: 'drover_infra_retries_total', help: 'Operations retried after a transient Postgres or Redis error', registers });
    const sources = this.queueSources;
    new Gauge({
      name: 'drover_queue_jobs',
      help: 'Jobs in each step queue (BullMQ queue name) by BullMQ state, read at scrape time',
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
