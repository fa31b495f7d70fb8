import { DroverError } from '../errors';
import { TERMINAL_RUN_STATUSES, type RunStatus } from '../states';
import type { RunView } from '../types';

/** A run that did not reach the awaited status before `waitForRun`'s deadline; `run` is the last state seen. */
export class WaitTimeoutError extends DroverError {
  constructor(readonly run: RunView, timeoutMs: number) {
    super('wait_timeout', `run ${run.id} is still ${run.status} after ${timeoutMs} ms`, { retryable: true });
  }
}

/** Options of `waitForRun` (in-process and over HTTP). */
export interface WaitOptions {
  /** Give up after this long, in ms. Default 60 000. */
  timeoutMs?: number;
  /** First poll interval, growing by half each time up to the caller's ceiling. */
  pollMs?: number;
  /** Statuses that end the wait. Default: the terminal ones. */
  until?: RunStatus[];
}

/**
 * Polls `read` until the run is in one of `until`, backing off from `pollMs`
 * to `maxPollMs`; throws `WaitTimeoutError` with the last state past the
 * deadline. Engine-free, so the HTTP client shares it.
 * @param read reads the run's summary; `deadline` is the epoch ms the wait ends.
 */
export async function pollRun<T extends RunView>(
  read: (deadline: number) => Promise<T>,
  options: WaitOptions,
  defaults: { pollMs: number; maxPollMs: number },
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const until = options.until ?? TERMINAL_RUN_STATUSES;
  const deadline = Date.now() + timeoutMs;
  let pollMs = options.pollMs ?? defaults.pollMs;
  for (;;) {
    const run = await read(deadline);
    if (until.includes(run.status)) return run;
    if (Date.now() >= deadline) throw new WaitTimeoutError(run, timeoutMs);
    await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(1, deadline - Date.now()))));
    pollMs = Math.min(pollMs * 1.5, defaults.maxPollMs);
  }
}
