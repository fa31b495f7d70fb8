import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { appendStepLog, logLine, MAX_LOG_LINES_PER_ATTEMPT } from './step-logs';
import type { Sql } from '../db/sql';
import type { Dispatcher } from '../queue/dispatcher';
import { DroverError, NonRetryableError, isNonRetryable, serializeError } from '../errors';
import { Batcher } from '../infra/batcher';
import { withInfraRetry } from '../infra/retry';
import { findNonJson } from '../json';
import type { Metrics } from '../telemetry/metrics';
import type { Tracing } from '../telemetry/tracing';
import type { StepJobData } from '../queue/queue-backend';
import { checkJob, type JobRejection } from './job-check';
import { type ReadyStep, type StartRequest, type StartedStep, type StepStore, type StepSuccess, type SuccessRequest, type UnrecordedStart } from './step-store';
import { readStarts, type ReadStart } from './attempt-start';
import { backoffDelay, checkOutputSize, runAttempt } from './attempt-run';
import type { Processor, ProcessorContext } from '../types';
import { StepTransaction } from './step-transaction';
import type { DataSource } from 'typeorm';
import { isWaitProcessor, needsPreparedContext } from '../waits/kinds';
import type { WaitExecutor } from '../waits/wait-executor';
import { RateLimiter } from '../flow/rate-limit';

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
export interface ActiveAttempt {
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
  /** The attempt's `ctx.transaction`, once the processor opened it. */
  transaction?: StepTransaction;
  /** The attempt span's context as job metadata (tracing on): the steps it promotes continue its trace. */
  traceMetadata?: string;
  /** Set while the attempt's start is not written (the one-write path); cleared once it is `running`. */
  unrecorded?: {
    generation: number;
    /** The attempt count it read (the outcome and the late `running` write are fenced on it). */
    seenAttempt: number;
    /** When the attempt started (monotonic clock). */
    since: bigint;
    /** Writes `running` once the attempt has run `recordStartAfterMs`. */
    timer?: NodeJS.Timeout;
    /** That write, while in flight. */
    recording?: Promise<void>;
  };
}

/** Default of `recordStartAfterMs` (BENCHMARKS.md says why). */
export const DEFAULT_RECORD_START_AFTER_MS = 1000;

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
  /** The one-write path's starts: read, not written (`readStarts`). */
  private readonly reading = new Batcher<StartRequest, ReadStart>(
    (starts) => this.retry(() => readStarts(this.deps.sql, starts)), (s) => s.lease);
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
      /** The worker's DataSource, for `ctx.transaction`. */
      dataSource?: DataSource;
      /** Runs the built-in step kinds (map, child run, sleep, signal) and the onFailure step (src/waits/). */
      waits?: WaitExecutor;
      /** Tracing of each attempt (a span, its outcome, the context of the jobs it promotes). Default none. */
      tracing?: Tracing;
      /**
       * An attempt that ends within this many ms writes its start with its
       * outcome (one row update, one event); a longer one is written `running`
       * at this point. 0 writes every start at once. Default 1000.
       */
      recordStartAfterMs?: number;
      /** A step output larger than this (bytes of JSON) fails the step without retries. Default 1 MiB. */
      maxOutputBytes?: number;
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
      if (leases.has(attempt.lease) && !attempt.dropped) this.loseLease(attempt);
    }
  }

  private loseLease(attempt: ActiveAttempt): void {
    attempt.dropped = 'lease_lost';
    clearTimeout(attempt.unrecorded?.timer);
    attempt.controller.abort(new LeaseLostError());
  }

  /** Shutdown past the grace period: abort every attempt and write nothing for them. */
  abandonAll(): void {
    for (const attempt of this.active.values()) {
      clearTimeout(attempt.unrecorded?.timer);
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
    // Checked before anything else: job data is not trusted (anyone with queue access can add a job).
    const checked = checkJob(job);
    if (typeof checked === 'string') return this.reject(job, checked);
    const { stepId, runId, generation, processor } = checked;
    if (this.deps.waits && isWaitProcessor(processor)) return this.deps.waits.process(job, token, checked);
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
    const request: StartRequest = { stepId, runId, generation, lease, processor };
    let started: StartedStep | undefined;
    try {
      if (job.data.rateLimited === true) {
        // Off the batched path: the rate limiter's transaction records the start with the step's own.
        const limited = await this.retry(() => this.rateLimiter.start({ stepId, runId, generation, lease, processor }, this.deps.workerId));
        if ('waitMs' in limited) {
          this.deps.logger.debug({ stepId, key: limited.key, waitMs: limited.waitMs }, 'rate limit reached; job put off');
          return this.delayJob(job, token, limited.waitMs);
        }
        started = limited.started ?? undefined;
      } else {
        // A job BullMQ hands out again after a stall may be a crash loop: its start is written at once, so it counts.
        const read = this.recordStartAfterMs > 0 && !(job.stalledCounter > 0) ? await this.reading.add(request) : 'running';
        started = read === 'running' ? await this.starting.add(request) : read;
      }
    } catch (error) {
      // BullMQ has no attempts to burn: put the job back and try the start again.
      this.deps.logger.warn({ err: error, stepId }, 'could not record the start of a step; job put back');
      return this.delayJob(job, token, FAILED_START_DELAY_MS);
    }
    // A map element or an all_settled step: its parents (and item) come from src/waits/ (plain steps skip this).
    if (started && this.deps.waits && needsPreparedContext(started.options)) started = await this.deps.waits.prepare(started);
    if (!started) {
      // Off the hot path: only a start that found nothing asks why.
      const owner = await this.retry(() => this.deps.store.ownerOfStep(stepId));
      if (owner === undefined) return this.reject(job, 'unknown_step');
      if (owner.runId !== runId) return this.reject(job, 'run_mismatch');
      if (owner.processor !== processor) return this.reject(job, 'processor_mismatch');
      this.deps.metrics.transitionsDropped.inc({ transition: 'start' });
      this.deps.logger.debug({ stepId, jobId: job.id }, 'step not runnable (finished, cancelled or newer generation); job dropped');
      return { dropped: true };
    }
    const tracing = this.deps.tracing;
    if (!tracing) return this.runStarted(job, token, started, request);
    // One span per attempt, under BullMQ's `process` span of its job (which continues the run's trace).
    return tracing.inAttemptSpan(`drover.step ${started.workflow}/${started.name}`, {
      'drover.run.id': started.runId, 'drover.workflow': started.workflow, 'drover.step.id': started.id, 'drover.step.name': started.name,
      'drover.step.attempt': started.attempt, 'drover.step.processor': started.processor, 'drover.worker.id': this.deps.workerId,
    }, () => this.runStarted(job, token, started, request));
  };

  /** Runs the attempt that started (its start written, or read and kept for its outcome), and records its outcome. */
  private async runStarted(job: Job<StepJobData>, token: string | undefined, started: StartedStep, request: StartRequest): Promise<unknown> {
    const { stepId, lease, generation } = request;
    const queue = this.dispatcher.queueOfBullName(job.queueName);
    const debug = this.deps.logger.isLevelEnabled('debug');
    if (debug) this.deps.logger.debug({ stepId, runId: started.runId, step: started.name, attempt: started.attempt, takeover: started.takeover }, 'step started');
    if (started.queuedAtMs !== null) this.deps.metrics.queueWait.observe({ queue }, Math.max(0, Date.now() - started.queuedAtMs) / 1000);
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const attempt: ActiveAttempt = {
      stepId, lease, controller: new AbortController(), settled: Promise.resolve(), released, release, traceMetadata: this.deps.tracing?.metadataOf(),
    };
    this.active.set(lease, attempt);
    const startedAt = process.hrtime.bigint();
    if (!started.recorded) {
      const unrecorded: NonNullable<ActiveAttempt['unrecorded']> = { generation, seenAttempt: started.attempt - 1, since: startedAt };
      attempt.unrecorded = unrecorded;
      unrecorded.timer = setTimeout(() => { unrecorded.recording = this.recordLateStart(attempt, request); }, this.recordStartAfterMs);
    }
    const pendingLogs: Promise<unknown>[] = [];
    try {
      if (started.attempt > started.maxAttempts) {
        // A takeover after the last attempt was lost (the worker died or stalled).
        throw new NonRetryableError(`attempt ${started.attempt - 1} was lost (worker died or stalled) and no attempts remain`);
      }
      const output = await runAttempt(this.deps.processors[started.processor], this.context(job, started, attempt, pendingLogs), started.options.timeoutMs, attempt);
      const bad = findNonJson(output);
      if (bad) throw new NonRetryableError(`processor "${started.processor}" returned a value that is not JSON: ${bad.replace(/^\$/, 'output')}`);
      checkOutputSize(started.processor, output, this.deps.maxOutputBytes ?? 1024 * 1024);
      await Promise.allSettled(pendingLogs);
      if (attempt.dropped) return await this.drop(job, token, attempt, 'success');
      this.deps.metrics.stepDuration.observe({ queue }, Number(process.hrtime.bigint() - startedAt) / 1e9);
      const start = await this.settleStart(attempt);
      if (attempt.dropped) return await this.drop(job, token, attempt, 'success');
      const success: SuccessRequest = { stepId, lease, output: output ?? null, start };
      const result = attempt.transaction
        ? await this.succeedInTransaction(attempt.transaction, success)
        : await this.succeeding.add(success);
      if (!result) return await this.drop(job, token, attempt, 'success');
      this.deps.metrics.stepsFinished.inc({ status: 'succeeded', queue });
      this.deps.tracing?.annotate({ 'drover.step.outcome': 'succeeded' });
      if (debug) this.deps.logger.debug({ stepId, runId: result.runId, promoted: result.promoted.length }, 'step succeeded');
      const flow = started.options.flow;
      if (flow && (flow.step || (flow.run && result.runStatus))) await this.settleFlow(started.runId);
      this.countRunFinished(result.runStatus, result.runId);
      return { stepId };
    } catch (error) {
      // The processor's rows go with its failure: rolled back before the failure is recorded.
      await attempt.transaction?.rollback();
      await Promise.allSettled(pendingLogs);
      if (attempt.dropped) return await this.drop(job, token, attempt, 'failure');
      return await this.recordFailure(job, token, started, attempt, error);
    } finally {
      // No `running` write after the attempt ended (a drop, a shutdown); one in flight is awaited.
      clearTimeout(attempt.unrecorded?.timer);
      await attempt.unrecorded?.recording;
      // Dropped, abandoned or failed before the outcome: nothing it wrote commits.
      await attempt.transaction?.rollback();
      // A processor that ignored its abort (timeout, cancel) holds its concurrency slot until it returns.
      await attempt.settled;
      this.active.delete(lease);
    }
  }

  /**
   * Drops a job that failed its checks: no transition, no attempt, one warning
   * (its id and the reason; its data is not logged) and a metric. The job
   * completes, so it is not delivered again.
   */
  private reject(job: Job<StepJobData>, reason: JobRejection): { rejected: JobRejection } {
    this.deps.metrics.jobsRejected.inc({ reason });
    this.deps.logger.warn({ jobId: job.id, queue: job.queueName, reason }, 'job rejected before it ran: it does not match its step');
    return { rejected: reason };
  }

  /** `recordStartAfterMs`, resolved. */
  private get recordStartAfterMs(): number {
    return this.deps.recordStartAfterMs ?? DEFAULT_RECORD_START_AFTER_MS;
  }

  /**
   * An unrecorded attempt ran `recordStartAfterMs`: writes it `running` (fenced
   * on the step being as it read it), so operators see it and a crash from here
   * on counts the attempt. A lost fence (cancelled, taken by another delivery)
   * aborts the attempt; a write that fails leaves the start to the outcome.
   */
  private async recordLateStart(attempt: ActiveAttempt, request: StartRequest): Promise<void> {
    const u = attempt.unrecorded;
    if (!u || attempt.dropped) return;
    const elapsedMs = Number(process.hrtime.bigint() - u.since) / 1e6;
    try {
      const started = await this.starting.add({ ...request, seenAttempt: u.seenAttempt, elapsedMs });
      if (started) attempt.unrecorded = undefined;
      else if (!attempt.dropped) this.loseLease(attempt);
    } catch (error) {
      this.deps.logger.warn({ err: error, stepId: request.stepId }, 'could not write a long attempt as running; its outcome will write its start');
    }
  }

  /**
   * Before an outcome: stops the late `running` write (or waits for the one in
   * flight) and says how to fence the outcome: the unrecorded start it writes,
   * or undefined when the start is written (fenced on the lease).
   */
  private async settleStart(attempt: ActiveAttempt): Promise<UnrecordedStart | undefined> {
    const u = attempt.unrecorded;
    if (!u) return undefined;
    clearTimeout(u.timer);
    await u.recording;
    if (!attempt.unrecorded) return undefined;
    return { generation: u.generation, seenAttempt: u.seenAttempt, elapsedMs: Number(process.hrtime.bigint() - u.since) / 1e6, worker: this.deps.workerId };
  }

  /** Puts the job back for `ms` without a transition (BullMQ counts no attempt). */
  private async delayJob(job: Job<StepJobData>, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  /** One success statement for a batch, then one enqueue of every dependent it promoted. */
  private async recordSuccesses(successes: SuccessRequest[]): Promise<Map<string, StepSuccess>> {
    const outcomes = await this.retry(() => this.deps.store.markStepsSucceeded(successes, this.actor));
    await this.dispatcher.enqueue([...outcomes].flatMap(([lease, o]) => this.traced(lease, o.promoted)));
    return outcomes;
  }

  /**
   * The success of a step that used `ctx.transaction`: recorded by the same
   * statement as any success, but inside the processor's transaction, then
   * committed; a failed fence rolls everything back. Not retried (a commit
   * whose outcome is unknown fails the attempt; if it did commit, the failure
   * is fenced off and dropped).
   */
  private async succeedInTransaction(tx: StepTransaction, success: SuccessRequest): Promise<StepSuccess | undefined> {
    const outcome = await tx.commitWith((q) => this.deps.store.markStepsSucceeded([success], this.actor, q).then((m) => m.get(success.lease)));
    if (outcome) await this.dispatcher.enqueue(this.traced(success.lease, outcome.promoted));
    return outcome;
  }

  /** Steps promoted by an attempt, carrying its trace context when tracing is on. */
  private traced(lease: string, promoted: ReadyStep[]): ReadyStep[] {
    const metadata = this.active.get(lease)?.traceMetadata;
    return metadata ? promoted.map((step) => ({ ...step, traceMetadata: metadata })) : promoted;
  }

  private get dispatcher(): Dispatcher {
    return this.deps.dispatcher;
  }

  private limiter?: RateLimiter;
  private get rateLimiter(): RateLimiter {
    this.limiter ??= new RateLimiter(this.deps.sql, this.deps.store);
    return this.limiter;
  }

  /** A step under concurrency keys ended: its keys' waiters move up. Logs, never throws (the reconciler promotes too). */
  private async settleFlow(runId: string): Promise<void> {
    try {
      await this.retry(() => this.dispatcher.flow?.settle([runId]) ?? Promise.resolve());
    } catch (error) {
      this.deps.logger.warn({ err: error, runId }, 'could not promote the waiters of its concurrency keys; the reconciler will');
    }
  }

  private async recordFailure(job: Job<StepJobData>, token: string | undefined, started: StartedStep, attempt: ActiveAttempt, error: unknown): Promise<never | { dropped: true }> {
    const { lease } = attempt;
    const queue = this.dispatcher.queueOfBullName(job.queueName);
    this.deps.metrics.attemptsFailed.inc({ queue });
    const serialized = serializeError(error);
    const final = isNonRetryable(error) || started.attempt >= started.maxAttempts;
    this.deps.tracing?.failAttempt(error, final ? 'failed' : 'attempt_failed');
    const start = await this.settleStart(attempt);
    if (attempt.dropped) return this.drop(job, token, attempt, 'failure');
    if (final) {
      const result = await this.retry(() => this.deps.store.markStepFailed(started.id, lease, serialized, this.actor, true, start));
      if (!result) return this.dropFenced('failure');
      this.deps.metrics.stepsFinished.inc({ status: 'failed', queue });
      for (const k of result.skipped) this.deps.metrics.stepsFinished.inc({ status: 'skipped', queue: k.queue });
      for (const c of result.cancelled) this.deps.metrics.stepsFinished.inc({ status: 'cancelled', queue: c.queue });
      this.deps.logger.warn({ stepId: started.id, runId: started.runId, attempt: started.attempt, err: serialized }, 'step failed for good');
      await this.dispatcher.remove(result.cancelled.filter((c) => c.previous === 'queued'));
      await this.dispatcher.enqueue(result.promoted);
      this.countRunFinished(result.runStatus, result.runId);
      if (started.options.flow) await this.settleFlow(started.runId);
      await attempt.settled;
      // The one place a drover failure becomes BullMQ's "do not retry".
      throw new UnrecoverableError(serialized.message);
    }
    const retryInMs = backoffDelay(started.options.backoff, started.attempt);
    const recorded = await this.retry(() => this.deps.store.markAttemptFailed(started.id, lease, serialized, this.actor, retryInMs, start));
    if (!recorded) return this.dropFenced('failure');
    const retryAt = Date.now() + retryInMs;
    this.deps.logger.warn({ stepId: started.id, attempt: started.attempt, retryInMs, err: serialized }, 'step attempt failed; retrying');
    // The job stays active (and its slot taken) until a processor that ignored its abort returns.
    await attempt.settled;
    return this.delayJob(job, token, Math.max(0, retryAt - Date.now()));
  }

  private context(job: Job<StepJobData>, started: StartedStep, attempt: ActiveAttempt, pendingLogs: Promise<unknown>[]): ProcessorContext {
    const { sql, logger } = this.deps;
    let lines = 0;
    return {
      input: started.input ?? {},
      parents: started.parents,
      ...('item' in started ? { item: (started as { item?: unknown }).item, index: (started as { index?: number }).index } : {}),
      ...(started.options.failure ? { failure: started.options.failure as ProcessorContext['failure'] } : {}),
      params: started.options.params ?? {},
      run: { id: started.runId, workflow: started.workflow, workspace: started.workspace },
      step: { id: started.id, name: started.name, attempt: started.attempt },
      signal: attempt.controller.signal,
      idempotencyKey: started.id,
      log(message: string) {
        // Step logs (drover.step_logs), not the audit trail; bounded per attempt.
        if (++lines > MAX_LOG_LINES_PER_ATTEMPT + 1) return;
        const line = lines > MAX_LOG_LINES_PER_ATTEMPT ? `(more than ${MAX_LOG_LINES_PER_ATTEMPT} lines: the rest of this attempt's log is dropped)` : logLine(message);
        // Lines are written one after another, so both logs keep the processor's order.
        const previous = pendingLogs[pendingLogs.length - 1] ?? Promise.resolve();
        pendingLogs.push(previous.then(() => Promise.all([
          job.log(line).catch(() => undefined),
          appendStepLog(sql, { runId: started.runId, stepId: started.id, attempt: started.attempt, message: line })
            .catch((err) => logger.warn({ err }, 'could not store a step log line')),
        ])));
      },
      progress(value: number | object) {
        void job.updateProgress(value).catch(() => undefined);
      },
      transaction: async (work) => {
        const ds = this.deps.dataSource;
        if (!ds) throw new NonRetryableError('ctx.transaction needs the worker\'s database connection (run the step in a DroverWorker)');
        if (attempt.dropped) throw attempt.controller.signal.reason;
        attempt.transaction ??= new StepTransaction(ds);
        return attempt.transaction.run(work);
      },
    };
  }

  private countRunFinished(status: string | null, runId: string): void {
    if (status) this.deps.metrics.runsFinished.inc({ status });
    // A failed run's onFailure step, if its workflow has one (only failed runs pay for the look).
    if (status === 'failed' && this.deps.waits) void this.deps.waits.runFailed(runId).catch((err) => this.deps.logger.warn({ err, runId }, 'could not start the onFailure step; the reconciler will'));
  }

  private async drop(job: Job<StepJobData>, token: string | undefined, attempt: ActiveAttempt, transition: string): Promise<{ dropped: true }> {
    this.deps.metrics.transitionsDropped.inc({ transition });
    this.deps.tracing?.annotate({ 'drover.step.outcome': attempt.dropped ?? 'dropped' });
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
    this.deps.tracing?.annotate({ 'drover.step.outcome': 'dropped' });
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
