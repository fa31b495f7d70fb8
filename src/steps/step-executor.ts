import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { appendAudit } from '../audit/audit';
import type { Sql } from '../db/sql';
import type { Dispatcher } from '../queue/dispatcher';
import { DroverError, NonRetryableError, isNonRetryable, serializeError, StepTimeoutError } from '../errors';
import { Batcher } from '../infra/batcher';
import { withInfraRetry } from '../infra/retry';
import { findNonJson } from '../json';
import type { Metrics } from '../telemetry/metrics';
import type { StepJobData } from '../queue/queue-backend';
import { type StartRequest, type StartedStep, type StepStore, type StepSuccess, type SuccessRequest } from './step-store';
import type { Processor, ProcessorContext } from '../types';

/** The step was cancelled, or another execution took it over: its result is dropped. */
export class LeaseLostError extends DroverError {
  constructor() {
    super('lease_lost', 'the step was cancelled or taken over by another execution');
  }
}

/** The worker shut down past its grace period: the attempt's job goes back to the queue for another worker. */
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
  /** Resolves when the processor has really returned (or the worker abandoned the attempt). */
  settled: Promise<void>;
  /** Resolves when the worker abandons the attempt: it stops waiting for the processor. */
  released: Promise<void>;
  release: () => void;
}

/** How long a job whose processor this worker lacks is put back before another worker may take it. */
const MISSING_PROCESSOR_DELAY_MS = 1000;
/** How long a job is put back when its start could not be recorded (Postgres unreachable). */
const FAILED_START_DELAY_MS = 1000;

/**
 * Runs one step job: fences the step to `running`, calls the processor with
 * its context, and records the outcome with a fenced transition. Success
 * promotes dependents (enqueued after commit); a failure fails the step for
 * good, or records when its next attempt may start and delays the same job
 * until then. Postgres alone counts attempts and times retries; BullMQ's job
 * has one attempt and only carries the step.
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
      metrics: Metrics;
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
      // Stop waiting for processors that ignore their signal (they no longer hold a slot we keep).
      attempt.release();
    }
  }

  /** The BullMQ processor. */
  readonly process = async (job: Job<StepJobData>, token?: string): Promise<unknown> => {
    const { stepId, generation, processor = job.name } = job.data;
    if (!this.deps.processors[processor]) {
      // Not ours to run: no transition, no attempt; a worker that has the processor takes it.
      this.deps.logger.debug({ stepId, processor, jobId: job.id }, 'processor not registered here; job put back');
      return this.delayJob(job, token, MISSING_PROCESSOR_DELAY_MS);
    }
    // A job delivered again (a promoted delay, a stalled retry) may be early: Postgres says when the attempt may start.
    if (job.attemptsStarted !== 1) {
      const waitMs = await this.retry(() => this.deps.store.retryWaitMs(stepId, generation));
      if (waitMs > 0) return this.delayJob(job, token, waitMs);
    }
    const lease = randomUUID();
    let started: StartedStep | undefined;
    try {
      started = await this.starting.add({ stepId, generation, lease });
    } catch (error) {
      // BullMQ has no attempts to burn: put the job back and try the start again.
      this.deps.logger.warn({ err: error, stepId }, 'could not record the start of a step; job put back');
      return this.delayJob(job, token, FAILED_START_DELAY_MS);
    }
    if (!started) {
      this.deps.metrics.transitionsDropped.inc({ transition: 'start' });
      this.deps.logger.debug({ stepId, jobId: job.id }, 'step not runnable (finished, cancelled or newer generation); job dropped');
      return { dropped: true };
    }
    const queue = job.queueName;
    const debug = this.deps.logger.isLevelEnabled('debug');
    if (debug) this.deps.logger.debug({ stepId, runId: started.runId, step: started.name, attempt: started.attempt, takeover: started.takeover }, 'step started');
    if (started.queuedAtMs !== null) this.deps.metrics.queueWait.observe({ queue }, Math.max(0, Date.now() - started.queuedAtMs) / 1000);
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const attempt: ActiveAttempt = { stepId, lease, controller: new AbortController(), settled: Promise.resolve(), released, release };
    this.active.set(lease, attempt);
    const startedAt = process.hrtime.bigint();
    const pendingLogs: Promise<unknown>[] = [];
    try {
      if (started.attempt > started.maxAttempts) {
        // A takeover after the last attempt was lost (the worker died or stalled).
        throw new NonRetryableError(`attempt ${started.attempt - 1} was lost (worker died or stalled) and no attempts remain`);
      }
      const output = await runAttempt(this.deps.processors[started.processor], this.context(job, started, attempt, pendingLogs), started.options.timeoutMs, attempt);
      const bad = findNonJson(output);
      if (bad) throw new NonRetryableError(`processor "${started.processor}" returned a value that is not JSON: ${bad.replace(/^\$/, 'output')}`);
      await Promise.allSettled(pendingLogs);
      if (attempt.dropped) return await this.drop(job, token, attempt, 'success');
      this.deps.metrics.stepDuration.observe({ queue }, Number(process.hrtime.bigint() - startedAt) / 1e9);
      const result = await this.succeeding.add({ stepId, lease, output: output ?? null });
      if (!result) return await this.drop(job, token, attempt, 'success');
      this.deps.metrics.stepsFinished.inc({ status: 'succeeded', queue });
      if (debug) this.deps.logger.debug({ stepId, runId: result.runId, promoted: result.promoted.length }, 'step succeeded');
      this.countRunFinished(result.runStatus);
      return { stepId };
    } catch (error) {
      await Promise.allSettled(pendingLogs);
      if (attempt.dropped) return await this.drop(job, token, attempt, 'failure');
      return await this.recordFailure(job, token, started, attempt, error);
    } finally {
      // A processor that ignored its abort (timeout, cancel) holds its concurrency slot until it returns.
      await attempt.settled;
      this.active.delete(lease);
    }
  };

  /** Puts the job back for `ms` without a transition (BullMQ counts no attempt). */
  private async delayJob(job: Job<StepJobData>, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  /** One success statement for a batch, then one enqueue of every dependent it promoted. */
  private async recordSuccesses(successes: SuccessRequest[]): Promise<Map<string, StepSuccess>> {
    const outcomes = await this.retry(() => this.deps.store.markStepsSucceeded(successes, this.actor));
    await this.dispatcher.enqueue([...outcomes.values()].flatMap((o) => o.promoted));
    return outcomes;
  }

  private get dispatcher(): Dispatcher {
    return this.deps.dispatcher;
  }

  private async recordFailure(job: Job<StepJobData>, token: string | undefined, started: StartedStep, attempt: ActiveAttempt, error: unknown): Promise<never | { dropped: true }> {
    const { lease } = attempt;
    const queue = job.queueName;
    this.deps.metrics.attemptsFailed.inc({ queue });
    const serialized = serializeError(error);
    const final = isNonRetryable(error) || started.attempt >= started.maxAttempts;
    if (final) {
      const result = await this.retry(() => this.deps.store.markStepFailed(started.id, lease, serialized, this.actor, true));
      if (!result) return this.dropFenced('failure');
      this.deps.metrics.stepsFinished.inc({ status: 'failed', queue });
      for (const k of result.skipped) this.deps.metrics.stepsFinished.inc({ status: 'skipped', queue: this.dispatcher.queueLabel(k.queue) });
      for (const c of result.cancelled) this.deps.metrics.stepsFinished.inc({ status: 'cancelled', queue: this.dispatcher.queueLabel(c.queue) });
      this.deps.logger.warn({ stepId: started.id, runId: started.runId, attempt: started.attempt, err: serialized }, 'step failed for good');
      await this.dispatcher.remove(result.cancelled.filter((c) => c.previous === 'queued'));
      this.countRunFinished(result.runStatus);
      await attempt.settled;
      // The one place a drover failure becomes BullMQ's "do not retry".
      throw new UnrecoverableError(serialized.message);
    }
    const retryInMs = backoffDelay(started.options.backoff, started.attempt);
    const recorded = await this.retry(() => this.deps.store.markAttemptFailed(started.id, lease, serialized, this.actor, retryInMs));
    if (!recorded) return this.dropFenced('failure');
    const retryAt = Date.now() + retryInMs;
    this.deps.logger.warn({ stepId: started.id, attempt: started.attempt, retryInMs, err: serialized }, 'step attempt failed; retrying');
    // The job stays active (and its slot taken) until a processor that ignored its abort returns.
    await attempt.settled;
    return this.delayJob(job, token, Math.max(0, retryAt - Date.now()));
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
    if (status) this.deps.metrics.runsFinished.inc({ status });
  }

  private async drop(job: Job<StepJobData>, token: string | undefined, attempt: ActiveAttempt, transition: string): Promise<{ dropped: true }> {
    this.deps.metrics.transitionsDropped.inc({ transition });
    await attempt.settled;
    if (attempt.dropped === 'abandoned') {
      // Hand the job straight back (BullMQ counts no attempt): another worker takes the step over.
      // Should that fail, the job fails in BullMQ and the reconciler re-queues the step.
      await job.moveToDelayed(Date.now(), token).catch(() => { throw new AbandonedError(); });
      throw new DelayedError();
    }
    return { dropped: true };
  }

  private dropFenced(transition: string): { dropped: true } {
    this.deps.metrics.transitionsDropped.inc({ transition });
    return { dropped: true };
  }

  private retry<T>(operation: () => Promise<T>): Promise<T> {
    return withInfraRetry(operation, {
      onRetry: (err, n) => {
        this.deps.metrics.infraRetries.inc();
        this.deps.logger.warn({ err, attempt: n }, 'transient infrastructure error; retrying');
      },
    });
  }
}

/**
 * Runs the processor, aborting on the step's timeout or on cancel. The
 * attempt's `settled` resolves only when the processor has really returned
 * (or the attempt is released at shutdown).
 */
function runAttempt(processor: Processor, ctx: ProcessorContext, timeoutMs: number | null, attempt: ActiveAttempt): Promise<unknown> {
  const { controller } = attempt;
  const work = Promise.resolve().then(() => processor(ctx));
  attempt.settled = Promise.race([work.then(() => undefined, () => undefined), attempt.released]);
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs) timer = setTimeout(() => controller.abort(new StepTimeoutError(timeoutMs)), timeoutMs);
  const aborted = new Promise<never>((_, reject) => {
    if (controller.signal.aborted) reject(controller.signal.reason);
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  // A processor that ignores its signal keeps running (and counting); its late result is ignored.
  work.catch(() => undefined);
  aborted.catch(() => undefined);
  return Promise.race([work, aborted]).finally(() => clearTimeout(timer));
}

/** The delay before the next attempt, as BullMQ computes it. */
export function backoffDelay(backoff: { type: 'fixed' | 'exponential'; delayMs: number }, attempt: number): number {
  return backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.max(0, attempt - 1);
}
