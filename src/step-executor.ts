import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { appendAudit } from './audit/audit';
import type { Sql } from './db/sql';
import type { Dispatcher } from './dispatcher';
import { DroverError, NonRetryableError, isNonRetryable, serializeError, StepTimeoutError } from './errors';
import { Batcher } from './infra/batcher';
import { withInfraRetry } from './infra/retry';
import { findNonJson } from './json';
import { metrics } from './metrics';
import type { StepJobData } from './queue-backend';
import { type StartRequest, type StartedStep, type StepStore, type StepSuccess, type SuccessRequest } from './step-store';
import type { Processor, ProcessorContext } from './types';

/** The step was cancelled, or another execution took it over: its result is dropped. */
export class LeaseLostError extends DroverError {
  constructor() {
    super('lease_lost', 'the step was cancelled or taken over by another execution');
  }
}

/** The worker shut down past its grace period: the attempt is left to stall detection. */
export class AbandonedError extends DroverError {
  constructor() {
    super('abandoned', 'the worker shut down before the attempt finished', { retryable: true });
  }
}

/** One attempt in progress on this worker. */
interface ActiveAttempt {
  stepId: string;
  lease: string;
  controller: AbortController;
  /** Set when the lease was lost (cancel, takeover) or the worker abandoned the attempt. */
  dropped?: 'lease_lost' | 'abandoned';
}

/**
 * Runs one step job: fences the step to `running`, calls the processor with
 * its context, and records the outcome with a fenced transition. Success
 * promotes dependents (enqueued after commit); a failure is retried by BullMQ
 * with the step's backoff, or fails the step for good.
 */
export class StepExecutor {
  /** Attempts in progress, by lease (two attempts of one step can overlap here: a resume). */
  private readonly active = new Map<string, ActiveAttempt>();
  private readonly actor: string;
  /**
   * Group commit of the hot transitions: the starts and successes that
   * arrive while one of their kind is in flight go together
   * in one statement (no added latency when the worker is idle).
   */
  private readonly starting = new Batcher<StartRequest, StartedStep>(
    (starts) => this.retry(() => this.deps.store.markStepsRunning(starts, this.deps.workerId)), (s) => s.lease);
  private readonly succeeding = new Batcher<SuccessRequest, StepSuccess>(
    (successes) => this.recordSuccesses(successes), (s) => s.lease);

  constructor(
    private readonly deps: {
      sql: Sql;
      store: StepStore;
      dispatcher: Dispatcher;
      processors: Record<string, Processor>;
      workerId: string;
      logger: Logger;
    },
  ) {
    this.actor = `worker:${deps.workerId}`;
  }

  /** Attempts in progress (for the lease watcher and shutdown). */
  activeAttempts(): ActiveAttempt[] {
    return [...this.active.values()];
  }

  /** Aborts attempts whose lease is gone (the step was cancelled or taken over). */
  dropLostLeases(leases: Set<string>): void {
    // By lease, not step id: a newer attempt of the same step (a resume) may run here too.
    for (const attempt of this.active.values()) {
      if (leases.has(attempt.lease) && !attempt.dropped) {
        attempt.dropped = 'lease_lost';
        attempt.controller.abort(new LeaseLostError());
      }
    }
  }

  /** Shutdown past the grace period: abort every attempt and write nothing for them. */
  abandonAll(): void {
    for (const attempt of this.active.values()) {
      if (!attempt.dropped) {
        attempt.dropped = 'abandoned';
        attempt.controller.abort(new AbandonedError());
      }
    }
  }

  /** The BullMQ processor. */
  readonly process = async (job: Job<StepJobData>): Promise<unknown> => {
    const { stepId, generation } = job.data;
    const lease = randomUUID();
    const started = await this.starting.add({ stepId, generation, lease });
    if (!started) {
      metrics.transitionsDropped.inc({ transition: 'start' });
      this.deps.logger.debug({ stepId, jobId: job.id }, 'step not runnable (finished, cancelled or newer generation); job dropped');
      return { dropped: true };
    }
    const queue = job.queueName;
    const debug = this.deps.logger.isLevelEnabled('debug');
    if (debug) this.deps.logger.debug({ stepId, runId: started.runId, step: started.name, attempt: started.attempt, takeover: started.takeover }, 'step started');
    if (started.queuedAtMs !== null) metrics.queueWait.observe({ queue }, Math.max(0, Date.now() - started.queuedAtMs) / 1000);
    const attempt: ActiveAttempt = { stepId, lease, controller: new AbortController() };
    this.active.set(lease, attempt);
    const startedAt = process.hrtime.bigint();
    const pendingLogs: Promise<unknown>[] = [];
    try {
      if (started.attempt > started.maxAttempts) {
        // A takeover after the last attempt was lost (the worker died or stalled).
        throw new NonRetryableError(`attempt ${started.attempt - 1} was lost (worker died or stalled) and no attempts remain`);
      }
      const processor = this.deps.processors[started.processor];
      if (!processor) throw new DroverError('unknown_processor', `processor "${started.processor}" is not registered on worker ${this.deps.workerId}`, { retryable: true });
      const output = await runAttempt(processor, this.context(job, started, attempt, pendingLogs), started.options.timeoutMs, attempt.controller);
      const bad = findNonJson(output);
      if (bad) throw new NonRetryableError(`processor "${started.processor}" returned a value that is not JSON: ${bad.replace(/^\$/, 'output')}`);
      await Promise.allSettled(pendingLogs);
      if (attempt.dropped) return this.drop(attempt, 'success');
      metrics.stepDuration.observe({ queue }, Number(process.hrtime.bigint() - startedAt) / 1e9);
      const result = await this.succeeding.add({ stepId, lease, output: output ?? null });
      if (!result) return this.drop(attempt, 'success');
      metrics.stepsFinished.inc({ status: 'succeeded', queue });
      if (debug) this.deps.logger.debug({ stepId, runId: result.runId, promoted: result.promoted.length }, 'step succeeded');
      this.countRunFinished(result.runStatus);
      return { stepId };
    } catch (error) {
      await Promise.allSettled(pendingLogs);
      if (attempt.dropped) return this.drop(attempt, 'failure');
      return await this.recordFailure(job, started, lease, error);
    } finally {
      this.active.delete(lease);
    }
  };

  /** One success statement for a batch, then one enqueue of every dependent it promoted. */
  private async recordSuccesses(successes: SuccessRequest[]): Promise<Map<string, StepSuccess>> {
    const outcomes = await this.retry(() => this.deps.store.markStepsSucceeded(successes, this.actor));
    await this.dispatcher.enqueue([...outcomes.values()].flatMap((o) => o.promoted));
    return outcomes;
  }

  private get dispatcher(): Dispatcher {
    return this.deps.dispatcher;
  }

  private async recordFailure(job: Job<StepJobData>, started: StartedStep, lease: string, error: unknown): Promise<never | { dropped: true }> {
    const queue = job.queueName;
    metrics.attemptsFailed.inc({ queue });
    const serialized = serializeError(error);
    const final = isNonRetryable(error) || started.attempt >= started.maxAttempts;
    if (final) {
      const result = await this.retry(() => this.deps.store.markStepFailed(started.id, lease, serialized, this.actor, true));
      if (!result) return this.dropFenced('failure');
      metrics.stepsFinished.inc({ status: 'failed', queue });
      for (const k of result.skipped) metrics.stepsFinished.inc({ status: 'skipped', queue: this.dispatcher.queueLabel(k.queue) });
      for (const c of result.cancelled) metrics.stepsFinished.inc({ status: 'cancelled', queue: this.dispatcher.queueLabel(c.queue) });
      this.deps.logger.warn({ stepId: started.id, runId: started.runId, attempt: started.attempt, err: serialized }, 'step failed for good');
      await this.dispatcher.remove(result.cancelled.filter((c) => c.previous === 'queued'));
      this.countRunFinished(result.runStatus);
      // The one place a drover failure becomes BullMQ's "do not retry".
      throw new UnrecoverableError(serialized.message);
    }
    const retryInMs = backoffDelay(started.options.backoff, started.attempt);
    const recorded = await this.retry(() => this.deps.store.markAttemptFailed(started.id, lease, serialized, this.actor, retryInMs));
    if (!recorded) return this.dropFenced('failure');
    this.deps.logger.warn({ stepId: started.id, attempt: started.attempt, retryInMs, err: serialized }, 'step attempt failed; retrying');
    throw error instanceof Error ? error : new Error(serialized.message);
  }

  private context(job: Job<StepJobData>, started: StartedStep, attempt: ActiveAttempt, pendingLogs: Promise<unknown>[]): ProcessorContext {
    const { sql, logger } = this.deps;
    const actor = this.actor;
    return {
      input: started.input ?? {},
      parents: started.parents,
      run: { id: started.runId, workflow: started.workflow, workspace: started.workspace },
      step: { id: started.id, name: started.name, attempt: started.attempt },
      signal: attempt.controller.signal,
      idempotencyKey: started.id,
      log(message: string) {
        const line = String(message).slice(0, 8192);
        // Lines are written one after another, so both logs keep the processor's order.
        const previous = pendingLogs[pendingLogs.length - 1] ?? Promise.resolve();
        pendingLogs.push(previous.then(() => Promise.all([
          job.log(line).catch(() => undefined),
          appendAudit(sql, started.runId, actor, [['step.log', started.id, { attempt: started.attempt, message: line.replace(/\u0000/g, '') }]])
            .catch((err) => logger.warn({ err }, 'could not store a step log line')),
        ])));
      },
      progress(value: number | object) {
        void job.updateProgress(value).catch(() => undefined);
      },
    };
  }

  private countRunFinished(status: string | null): void {
    if (status) metrics.runsFinished.inc({ status });
  }

  private drop(attempt: ActiveAttempt, transition: string): { dropped: true } {
    metrics.transitionsDropped.inc({ transition });
    if (attempt.dropped === 'abandoned') {
      // Leave the job locked: BullMQ's stall detection hands it to another worker.
      throw new AbandonedError();
    }
    return { dropped: true };
  }

  private dropFenced(transition: string): { dropped: true } {
    metrics.transitionsDropped.inc({ transition });
    return { dropped: true };
  }

  private retry<T>(operation: () => Promise<T>): Promise<T> {
    return withInfraRetry(operation, {
      onRetry: (err, n) => {
        metrics.infraRetries.inc();
        this.deps.logger.warn({ err, attempt: n }, 'transient infrastructure error; retrying');
      },
    });
  }
}

/** Runs the processor, aborting on the step's timeout or on cancel. */
function runAttempt(processor: Processor, ctx: ProcessorContext, timeoutMs: number | null, controller: AbortController): Promise<unknown> {
  const work = Promise.resolve().then(() => processor(ctx));
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs) timer = setTimeout(() => controller.abort(new StepTimeoutError(timeoutMs)), timeoutMs);
  const aborted = new Promise<never>((_, reject) => {
    if (controller.signal.aborted) reject(controller.signal.reason);
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  // A processor that ignores its signal keeps running; its late result is ignored.
  work.catch(() => undefined);
  aborted.catch(() => undefined);
  return Promise.race([work, aborted]).finally(() => clearTimeout(timer));
}

/** The delay before the next attempt, as BullMQ computes it. */
export function backoffDelay(backoff: { type: 'fixed' | 'exponential'; delayMs: number }, attempt: number): number {
  return backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.max(0, attempt - 1);
}
