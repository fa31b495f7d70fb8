import { DroverError } from '../errors';
import type { RunWithSteps } from '../types';

/**
 * `result()` of a run that did not succeed: `code` is `run_failed` or
 * `run_cancelled`; `run` is the finished run with its steps, and the message
 * names the failed steps with their errors.
 */
export class RunFailedError extends DroverError {
  constructor(readonly run: RunWithSteps) {
    super(run.status === 'cancelled' ? 'run_cancelled' : 'run_failed', describe(run), { details: run.error ?? undefined });
  }
}

/** The output of a finished run, or `RunFailedError` when it failed or was cancelled. Engine-free (the client shares it). */
export function outputOfRun<O>(run: RunWithSteps): O {
  if (run.status === 'succeeded') return run.output as O;
  throw new RunFailedError(run);
}

function describe(run: RunWithSteps): string {
  const head = `run ${run.id} of workflow "${run.workflow}" ${run.status === 'cancelled' ? 'was cancelled' : run.status}`;
  const failed = (run.steps ?? []).filter((s) => s.status === 'failed');
  if (failed.length === 0) return head;
  const reasons = failed.slice(0, 3).map((s) => {
    const message = (s.error as { message?: unknown } | null)?.message;
    return `step "${s.name}"${typeof message === 'string' ? `: ${message.split('\n')[0].slice(0, 200)}` : ''}`;
  });
  return `${head} (${reasons.join('; ')}${failed.length > 3 ? `; ${failed.length - 3} more` : ''})`;
}
