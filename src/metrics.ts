import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The process's Prometheus metrics. Counters are incremented where the
 * transition happens (a worker, the reconciler, the API), so each process
 * reports what it did; `drover start` runs all of them in one process.
 */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'drover_process_' });

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const metrics = {
  runsCreated: new Counter({ name: 'drover_runs_created_total', help: 'Runs created', registers: [registry] }),
  runsFinished: new Counter({ name: 'drover_runs_finished_total', help: 'Runs that reached a final status, by status', labelNames: ['status'], registers: [registry] }),
  stepsFinished: new Counter({ name: 'drover_steps_finished_total', help: 'Steps that reached a final status in this process, by status', labelNames: ['status', 'queue'], registers: [registry] }),
  attemptsFailed: new Counter({ name: 'drover_step_attempts_failed_total', help: 'Failed step attempts (retried or final)', labelNames: ['queue'], registers: [registry] }),
  transitionsDropped: new Counter({ name: 'drover_transitions_dropped_total', help: 'Results dropped by the fence (another actor moved the step first)', labelNames: ['transition'], registers: [registry] }),
  stepDuration: new Histogram({ name: 'drover_step_duration_seconds', help: 'Processor run time of an attempt', labelNames: ['queue'], buckets: DURATION_BUCKETS, registers: [registry] }),
  queueWait: new Histogram({ name: 'drover_step_queue_wait_seconds', help: 'Time from queued to started', labelNames: ['queue'], buckets: DURATION_BUCKETS, registers: [registry] }),
  reconcilerRepairs: new Counter({ name: 'drover_reconciler_repairs_total', help: 'Repairs made by the reconciler, by kind', labelNames: ['kind'], registers: [registry] }),
  infraRetries: new Counter({ name: 'drover_infra_retries_total', help: 'Operations retried after a transient Postgres or Redis error', registers: [registry] }),
};
