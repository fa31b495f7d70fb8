/** Run states; the `runs.status` check constraint holds the same list. */
export const RUN_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Step states; the `steps.status` check constraint holds the same list. */
export const STEP_STATUSES = ['pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'skipped'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** Worker registry states; the `workers.status` check constraint holds the same list. */
export const WORKER_STATUSES = ['active', 'stopped', 'gone'] as const;
export type WorkerStatus = (typeof WORKER_STATUSES)[number];

export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled'];
export const TERMINAL_STEP_STATUSES: readonly StepStatus[] = ['succeeded', 'failed', 'cancelled', 'skipped'];
