import type { JobsOptions } from 'bullmq';
import type { Logger } from 'pino';
import { withInfraRetry } from '../infra/retry';
import type { QueueBackend, QueueBackendKind, StepJobData } from './queue-backend';
import type { ReadyStep } from '../steps/step-store';
import type { FlowControl } from '../flow/flow-control';
import { isRateLimited, needsAdmission } from '../flow/flow-spec';

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

/** The BullMQ job name of a step: `<workflow>/<step>`, as Bull Board lists it. */
export function jobNameOf(step: Pick<ReadyStep, 'workflow' | 'name'>): string {
  return `${step.workflow}/${step.name}`;
}

/** The page of a run in drover's dashboard (the job data carries it, so Bull Board's job view links back). */
export function runPathOf(runId: string): string {
  return `/runs/${runId}`;
}

/** What a step's job carries (see `StepJobData`). */
export function jobDataOf(step: ReadyStep): StepJobData {
  return {
    runId: step.runId, stepId: step.id, generation: step.generation, processor: step.processor,
    workflow: step.workflow, step: step.name, runPath: runPathOf(step.runId),
    ...(isRateLimited(step.options.flow) ? { rateLimited: true } : {}),
  };
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
    // BullMQ's own propagation field: its worker's `process` span continues this trace.
    ...(step.traceMetadata ? { telemetry: { metadata: step.traceMetadata } } : {}),
  };
}

/**
 * Enqueues ready steps after their transaction committed, in one bulk call per
 * queue. A failure here loses nothing: the rows say `queued`, and the
 * reconciler enqueues what is missing. So it logs instead of throwing.
 */
export class Dispatcher {
  /**
   * @param flow concurrency keys: steps under them are enqueued only once they
   *   hold their place (without it, such steps' jobs fail the start fence).
   */
  constructor(private readonly backend: QueueBackend, private readonly logger: Logger, readonly flow?: FlowControl) {
    flow?.attach(this);
  }

  /** The drover queue (the metrics label, as the API names it) of a BullMQ queue name. */
  queueOfBullName(bullName: string): string {
    return this.backend.droverName(bullName) ?? bullName;
  }

  /** Adds the jobs of `steps` (named `<workflow>/<step>`); logs, never throws. */
  async enqueue(steps: ReadyStep[]): Promise<void> {
    if (this.flow && steps.some((s) => needsAdmission(s.options.flow))) {
      try {
        steps = await this.flow.admit(steps);
      } catch (error) {
        // The rows say queued: the reconciler enqueues them again, through admission.
        this.logger.warn({ err: error, steps: steps.length }, 'flow admission failed; the reconciler will enqueue these steps');
        steps = steps.filter((s) => !needsAdmission(s.options.flow));
      }
    }
    if (steps.length === 0) return;
    if (this.flow && steps.some((s) => isRateLimited(s.options.flow))) steps = await this.delayRateLimited(steps);
    const byQueue = new Map<string, ReadyStep[]>();
    for (const step of steps) {
      const list = byQueue.get(step.queue);
      if (list) list.push(step);
      else byQueue.set(step.queue, [step]);
    }
    await Promise.all([...byQueue].map(async ([queue, list]) => {
      const jobs = list.map((s) => ({ name: jobNameOf(s), data: jobDataOf(s), opts: jobOptionsOf(s, this.backend.kind) }));
      try {
        await withInfraRetry(() => this.backend.queue(queue).addBulk(jobs), { maxElapsedMs: 5000 });
      } catch (error) {
        this.logger.warn({ err: error, queue, steps: list.length }, 'enqueue failed; the reconciler will enqueue these steps');
      }
    }));
  }

  /** Rate-limited steps wait in the queue for their booked turn; a failed booking only loses the spacing. */
  private async delayRateLimited(steps: ReadyStep[]): Promise<ReadyStep[]> {
    try {
      const delays = await this.flow!.bookRates(steps.filter((s) => isRateLimited(s.options.flow)));
      return steps.map((s) => (delays.get(s.id) ? { ...s, extraDelayMs: (s.extraDelayMs ?? 0) + delays.get(s.id)! } : s));
    } catch (error) {
      this.logger.warn({ err: error }, 'could not book rate-limit turns; the steps start as their windows allow');
      return steps;
    }
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
