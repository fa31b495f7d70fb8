import type { JobsOptions } from 'bullmq';
import type { Logger } from 'pino';
import { withInfraRetry } from '../infra/retry';
import type { QueueBackend, QueueBackendKind, StepJobData } from './queue-backend';
import type { ReadyStep } from '../steps/step-store';

/**
 * How long BullMQ keeps finished jobs, for Bull Board and the job logs (the
 * step rows and audit trail keep every outcome for good). Redis keeps the last
 * 1,000 completed jobs. BullMQ's PostgreSQL backend trims by count with a
 * query that costs more than the job itself (raw BullMQ-on-Postgres fell from
 * ~3,600 to ~1,200 jobs/s here, see BENCHMARKS.md), so there completed jobs
 * are kept for 10 minutes instead. Both keep the last 5,000 failed jobs.
 */
export function retentionOf(kind: QueueBackendKind): Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'> {
  return {
    removeOnComplete: kind === 'redis' ? { count: 1000 } : { age: 600 },
    removeOnFail: { count: 5000 },
  };
}

/**
 * The BullMQ job id of a step: derived from the step id and its generation, so
 * enqueuing twice is harmless, and a retried (resumed) step gets a fresh id.
 */
export function jobIdOf(stepId: string, generation: number): string {
  return `${stepId}-g${generation}`;
}

/** BullMQ options of a step's job. */
export function jobOptionsOf(step: ReadyStep, kind: QueueBackendKind): JobsOptions {
  const priority = step.options.priority || step.runPriority || 0;
  const delay = step.options.delayMs + (step.extraDelayMs ?? 0);
  return {
    jobId: jobIdOf(step.id, step.generation),
    // Postgres owns attempts and backoff: BullMQ only carries the job (a retry delays the same job).
    attempts: 1,
    ...(delay > 0 ? { delay } : {}),
    ...(priority > 0 ? { priority } : {}),
    ...retentionOf(kind),
  };
}

/**
 * Enqueues ready steps after their transaction committed, in one bulk call per
 * queue. A failure here loses nothing: the rows say `queued`, and the
 * reconciler enqueues what is missing. So it logs instead of throwing.
 */
export class Dispatcher {
  constructor(private readonly backend: QueueBackend, private readonly logger: Logger) {}

  /** The metrics label of a drover queue: its BullMQ queue name. */
  queueLabel(queue: string): string {
    return this.backend.bullName(queue);
  }

  async enqueue(steps: ReadyStep[]): Promise<void> {
    if (steps.length === 0) return;
    const byQueue = new Map<string, ReadyStep[]>();
    for (const step of steps) {
      const list = byQueue.get(step.queue);
      if (list) list.push(step);
      else byQueue.set(step.queue, [step]);
    }
    await Promise.all([...byQueue].map(async ([queue, list]) => {
      const jobs = list.map((s) => ({
        name: s.processor,
        data: { stepId: s.id, runId: s.runId, generation: s.generation, processor: s.processor } satisfies StepJobData,
        opts: jobOptionsOf(s, this.backend.kind),
      }));
      try {
        await withInfraRetry(() => this.backend.queue(queue).addBulk(jobs), { maxElapsedMs: 5000 });
      } catch (error) {
        this.logger.warn({ err: error, queue, steps: list.length }, 'enqueue failed; the reconciler will enqueue these steps');
      }
    }));
  }

  /** Removes the jobs of steps that will not run (cancelled); best effort. */
  async remove(steps: Array<{ id: string; queue: string; generation: number }>): Promise<void> {
    await Promise.all(steps.map(async (s) => {
      try {
        await this.backend.queue(s.queue).remove(jobIdOf(s.id, s.generation));
      } catch {
        // An active (locked) job cannot be removed: its worker sees the cancel and drops it.
      }
    }));
  }
}
