import { DelayedError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { CheckedJob } from '../steps/job-check';
import type { Dispatcher } from '../queue/dispatcher';
import type { StepJobData } from '../queue/queue-backend';
import type { RunService } from '../runs/run-service';
import type { StartedStep, StepSuccess, FailureOutcome } from '../steps/step-store';
import { withInfraRetry } from '../infra/retry';
import { isJsonObject } from '../json';
import { InvalidInputError, InvalidRequestError, PayloadTooLargeError, UnknownWorkflowError, type SerializedError } from '../errors';
import { MAX_MAP_ELEMENTS, valueAtPath, WAIT_PROCESSORS } from './kinds';
import type { OnFailure } from './on-failure';
import type { WaitingStep, WaitStore } from './wait-store';

/** A signal wait without a timeout looks at Postgres again this often (a wake-up the queue lost). */
export const SIGNAL_RECHECK_MS = 60_000;
/** A child-run step looks at its child at most this far apart (and at least 250 ms). */
export const CHILD_POLL_MAX_MS = 2_000;
/** A map step whose elements are still open (after a resume) looks again after this long. */
const MAP_POLL_MS = 1_000;

/** The idempotency key of the child run a step starts in one generation (a retry or replay finds the same child). */
export function childKeyOf(stepId: string, generation: number): string {
  return `drover:child:${stepId}:g${generation}`;
}

/** What the job's handler did (the job's return value, shown in Bull Board). */
type Handled = { waited: string } | { dropped: true };

/**
 * Runs the jobs of the step kinds drover runs itself (CONTRACT §7): a sleep,
 * a signal wait, a child run and a map step. None holds a worker slot while
 * it waits: the handler looks at Postgres, records what it found, and puts
 * its job back delayed until the wake time, the signal's deadline, or the
 * next look at a child (the row is the truth; the reconciler re-creates a
 * lost job and this handler delays it again if it is early).
 */
export class WaitExecutor {
  private readonly actor: string;

  constructor(private readonly deps: {
    store: WaitStore;
    dispatcher: Dispatcher;
    runs: RunService;
    onFailure: OnFailure;
    workerId: string;
    logger: Logger;
  }) {
    this.actor = `worker:${deps.workerId}`;
  }

  /** The BullMQ processor for a built-in step's job. */
  async process(job: Job<StepJobData>, token: string | undefined, checked: CheckedJob): Promise<Handled> {
    const step = await this.retry(() => this.deps.store.load(checked.stepId, checked.runId, checked.generation));
    if (!step || step.processor !== checked.processor) return { dropped: true };
    if (step.runStatus !== 'pending' && step.runStatus !== 'running') return { dropped: true };
    switch (step.processor) {
      case WAIT_PROCESSORS.sleep: return this.sleep(job, token, step);
      case WAIT_PROCESSORS.waitFor: return this.signal(job, token, step);
      case WAIT_PROCESSORS.run: return this.child(job, token, step);
      case WAIT_PROCESSORS.map: return this.map(job, token, step);
      default: return { dropped: true };
    }
  }

  /** A run failed: its workflow's onFailure step, if any, is created and enqueued. */
  runFailed(runId: string): Promise<void> {
    return this.deps.onFailure.runFailed(runId);
  }

  /** The context a map element or an `all_settled` step needs beyond the start statement's. */
  async prepare(started: StartedStep): Promise<StartedStep & { item?: unknown; index?: number }> {
    const element = started.options.element;
    const parents = await this.retry(() => this.deps.store.preparedParents(started.id, element !== undefined));
    return element ? { ...started, parents, item: element.item, index: element.index } : { ...started, parents };
  }

  private async sleep(job: Job<StepJobData>, token: string | undefined, step: WaitingStep): Promise<Handled> {
    if (step.waitedMs === null) {
      const { ms, until } = step.options.sleep ?? {};
      let wake: { inMs?: number; at?: string };
      if (until !== undefined) {
        const found = valueAtPath(until, step.input, step.parents);
        const at = typeof found.value === 'string' ? Date.parse(found.value) : NaN;
        if (!found.found || Number.isNaN(at)) {
          return this.failed(step, 'invalid_sleep', `sleep.until "${until}" is ${found.found ? `not an ISO time (${JSON.stringify(found.value)?.slice(0, 80)})` : 'missing'}`);
        }
        wake = { at: new Date(at).toISOString() };
      } else {
        wake = { inMs: ms ?? 0 };
      }
      const inMs = await this.retry(() => this.deps.store.transaction(async (tx) => {
        if (!(await this.deps.store.lockRun(tx, step.runId))) return undefined;
        return this.deps.store.beginWait(tx, step, wake, ['step.sleeping', step.id, wake.at ? { until: wake.at } : { ms: wake.inMs }], this.actor);
      }));
      if (inMs === undefined) return { dropped: true };
      if ((inMs ?? 0) > 0) return this.delay(job, token, inMs!);
      return this.succeeded(step, { sleptMs: 0 });
    }
    if ((step.wakeInMs ?? 0) > 0) return this.delay(job, token, step.wakeInMs!);
    return this.succeeded(step, { sleptMs: Math.max(0, Math.round(step.waitedMs)) });
  }

  private async signal(job: Job<StepJobData>, token: string | undefined, step: WaitingStep): Promise<Handled> {
    const { signal, timeoutMs } = step.options.waitFor!;
    // Under the run row: a signal sent now either is seen here or sees this step waiting (src/waits/signals.ts).
    const found = await this.retry(() => this.deps.store.transaction(async (tx) => {
      if (!(await this.deps.store.lockRun(tx, step.runId))) return { gone: true as const };
      const first = await this.deps.store.firstSignal(tx, step.runId, signal);
      if (first) {
        const lease = await this.deps.store.claim(tx, step.id, step.generation, this.actor, this.deps.workerId);
        if (!lease) return { gone: true as const };
        const outcome = await this.deps.store.succeedClaimed(tx, step.id, lease, first.payload, this.actor);
        return { outcome };
      }
      if (step.waitedMs === null) {
        const inMs = await this.deps.store.beginWait(tx, step, timeoutMs ? { inMs: timeoutMs } : null, ['step.waiting', step.id, { signal, ...(timeoutMs ? { timeoutMs } : {}) }], this.actor);
        return { waitMs: inMs === undefined ? undefined : inMs };
      }
      return { waitMs: step.wakeInMs };
    }));
    if ('gone' in found) return { dropped: true };
    if ('outcome' in found) {
      await this.afterSuccess(found.outcome);
      return { waited: 'signal' };
    }
    if (found.waitMs !== null && found.waitMs !== undefined && found.waitMs <= 0) {
      return this.failed(step, 'signal_timeout', `signal "${signal}" did not arrive within ${timeoutMs} ms`);
    }
    return this.delay(job, token, Math.min(found.waitMs ?? SIGNAL_RECHECK_MS, SIGNAL_RECHECK_MS));
  }

  private async child(job: Job<StepJobData>, token: string | undefined, step: WaitingStep): Promise<Handled> {
    const { workflow, input } = step.options.run!;
    const key = childKeyOf(step.id, step.generation);
    let child = await this.retry(() => this.deps.store.childOf(step, key));
    if (!child) {
      let childInput: unknown = {};
      if (input === 'input') childInput = step.input;
      else if (input !== undefined) {
        const found = valueAtPath(input, step.input, step.parents);
        if (!found.found || !isJsonObject(found.value)) {
          return this.failed(step, 'invalid_child_input', `run.input "${input}" is ${found.found ? 'not a JSON object' : 'missing'}`);
        }
        childInput = found.value;
      }
      let created;
      try {
        created = await this.deps.runs.createRun({ workflow, input: childInput as Record<string, unknown>, idempotencyKey: key, workspace: step.workspace, priority: step.runPriority }, this.actor);
      } catch (error) {
        // A request the child's workflow refuses (unknown, bad input) will not start on a retry either.
        if (isRefusal(error)) return this.failed(step, error.code, `the child run of workflow "${workflow}" could not start: ${error.message}`);
        throw error;
      }
      await this.retry(() => this.deps.store.linkChild(created.run.id, step));
      await this.retry(() => this.deps.store.transaction(async (tx) => {
        if (!(await this.deps.store.lockRun(tx, step.runId))) return;
        await this.deps.store.beginWait(tx, step, null, ['step.child_started', step.id, { childRunId: created.run.id, workflow }], this.actor);
      }));
      child = { id: created.run.id, status: created.run.status, output: null, error: null };
    }
    if (child.status === 'succeeded') return this.succeeded(step, child.output);
    if (child.status === 'failed' || child.status === 'cancelled') {
      const reason = child.error?.message ?? child.status;
      // The child's first failed step and its code travel up, so the parent run's error can name them.
      const cause = child.status === 'failed' ? { childStep: child.error?.step, childCode: child.error?.code } : {};
      return this.failed(step, `child_${child.status}`, `child run ${child.id} (${workflow}) ${child.status}: ${reason}`, { childRunId: child.id, ...definedOnly(cause) });
    }
    const waited = step.waitedMs ?? 0;
    return this.delay(job, token, Math.min(CHILD_POLL_MAX_MS, Math.max(250, waited / 4)));
  }

  private async map(job: Job<StepJobData>, token: string | undefined, step: WaitingStep): Promise<Handled> {
    const progress = await this.retry(() => this.deps.store.mapProgress(step.id));
    if (progress.total === 0) {
      const { over, concurrency } = step.options.map!;
      const found = valueAtPath(over, step.input, step.parents);
      if (!found.found || !Array.isArray(found.value)) {
        return this.failed(step, 'invalid_map', `map.over "${over}" is ${found.found ? 'not an array' : 'missing'}`);
      }
      const items = found.value;
      if (items.length > MAX_MAP_ELEMENTS) {
        return this.failed(step, 'map_too_large', `map.over "${over}" has ${items.length} elements; a map step takes at most ${MAX_MAP_ELEMENTS}`);
      }
      if (items.length === 0) return this.succeeded(step, []);
      const ready = await this.retry(() => this.deps.store.startMap(step, items, concurrency ?? items.length, this.actor));
      if (!ready) return { dropped: true };
      await this.deps.dispatcher.enqueue(ready);
      return { waited: 'map' };
    }
    if (progress.open > 0) return this.delay(job, token, MAP_POLL_MS);
    const results = await this.retry(() => this.deps.store.mapResults(step.id));
    const bad = results.find((r) => r.status !== 'succeeded');
    if (bad) {
      const reason = bad.error?.message ?? bad.status;
      return this.failed(step, 'map_element_failed', `element ${bad.index} ${bad.status === 'failed' ? 'failed' : `was ${bad.status}`}: ${reason}`,
        { index: bad.index, ...definedOnly({ elementCode: bad.error?.code }) });
    }
    return this.succeeded(step, results.map((r) => r.output));
  }

  private async succeeded(step: WaitingStep, output: unknown): Promise<Handled> {
    const outcome = await this.retry(() => this.deps.store.succeed(step, output, this.actor, this.deps.workerId));
    if (!outcome) return { dropped: true };
    await this.afterSuccess(outcome);
    return { waited: step.processor.slice('drover:'.length) };
  }

  private async afterSuccess(outcome: StepSuccess | undefined): Promise<void> {
    if (!outcome) return;
    await this.deps.dispatcher.enqueue(outcome.promoted);
    if (outcome.runStatus === 'failed') await this.deps.onFailure.runFailed(outcome.runId);
  }

  private async failed(step: WaitingStep, code: string, message: string, extra: Record<string, unknown> = {}): Promise<Handled> {
    const error: SerializedError & Record<string, unknown> = { name: 'WaitError', message, code, retryable: false, ...extra };
    const outcome = await this.retry(() => this.deps.store.fail(step, error, this.actor, this.deps.workerId));
    if (!outcome) return { dropped: true };
    this.deps.logger.warn({ stepId: step.id, runId: step.runId, code }, message);
    await this.afterFailure(outcome);
    return { waited: step.processor.slice('drover:'.length) };
  }

  /** Enqueues what a final failure queued, removes the jobs it cancelled, and runs the onFailure step of a run it failed. */
  async afterFailure(outcome: FailureOutcome): Promise<void> {
    await this.deps.dispatcher.enqueue(outcome.promoted);
    await this.deps.dispatcher.remove(outcome.cancelled.filter((c) => c.previous === 'queued'));
    if (outcome.runStatus === 'failed') await this.deps.onFailure.runFailed(outcome.runId);
  }

  private async delay(job: Job<StepJobData>, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + Math.max(1, Math.ceil(ms)), token);
    throw new DelayedError();
  }

  private retry<T>(operation: () => Promise<T>): Promise<T> {
    return withInfraRetry(operation, { onRetry: (err) => this.deps.logger.warn({ err }, 'transient infrastructure error; retrying') });
  }
}

function isRefusal(error: unknown): error is InvalidRequestError | InvalidInputError | UnknownWorkflowError | PayloadTooLargeError {
  return error instanceof UnknownWorkflowError || error instanceof InvalidInputError || error instanceof InvalidRequestError || error instanceof PayloadTooLargeError;
}

/** The entries whose value is a string (an error's optional fields, as they are stored: absent, not null). */
function definedOnly(fields: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => typeof e[1] === 'string'));
}
