import { NonRetryableError, StepTimeoutError } from '../errors';
import type { Processor, ProcessorContext } from '../types';
import type { ActiveAttempt } from './step-executor';

// One attempt's processor call and what is checked of its result, for the StepExecutor.

/**
 * Runs the processor, aborting on the step's timeout or on cancel. The
 * attempt's `settled` resolves only when the processor has really returned
 * (or the attempt is released at shutdown).
 */
export function runAttempt(processor: Processor, ctx: ProcessorContext, timeoutMs: number | null, attempt: ActiveAttempt): Promise<unknown> {
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

/** Fails the step at once (no retry can shrink it) when its output is larger than `maxBytes` of JSON. */
export function checkOutputSize(processor: string, output: unknown, maxBytes: number): void {
  const bytes = output === undefined ? 0 : Buffer.byteLength(JSON.stringify(output));
  if (bytes > maxBytes) {
    throw new NonRetryableError(`processor "${processor}" returned an output of ${bytes} bytes of JSON, over the limit of ${maxBytes} bytes (DROVER_MAX_OUTPUT_BYTES): `
      + 'store large results elsewhere and return a reference');
  }
}

/** The delay before the next attempt, as BullMQ computes it. */
export function backoffDelay(backoff: { type: 'fixed' | 'exponential'; delayMs: number }, attempt: number): number {
  return backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.max(0, attempt - 1);
}
