import { isoTime } from '../json';
import type { RunListItem, RunView, StepView, WorkerView } from '../types';


/** Columns selected for a run view (snake_case rows from `drover.runs`). */
export const RUN_COLUMNS = `id, workflow, status, input, output, error, workspace, priority, idempotency_key, created_at, started_at, finished_at`;

/** Columns of a run in a list: no output (a copy of its sink steps' outputs, which may be large). */
export const RUN_LIST_COLUMNS = `id, workflow, status, input, error, workspace, priority, idempotency_key, created_at, started_at, finished_at`;

/** A run in `GET /api/runs`: the run without its output (read one run for that). */
export function toRunListItem(row: any): RunListItem {
  const { output: _output, ...item } = toRunView(row);
  return item;
}

/** A `drover.runs` row as the API shows it. */
export function toRunView(row: any): RunView {
  return {
    id: row.id,
    workflow: row.workflow,
    status: row.status,
    input: row.input ?? null,
    // While a run is open (or after it failed) the column holds the sink outputs so far.
    output: row.status === 'succeeded' ? row.output ?? null : null,
    error: row.error ?? null,
    workspace: row.workspace,
    priority: row.priority,
    idempotencyKey: row.idempotency_key ?? null,
    createdAt: isoTime(row.created_at)!,
    startedAt: isoTime(row.started_at),
    finishedAt: isoTime(row.finished_at),
  };
}

/**
 * Columns selected for a step view (`FROM drover.steps`). `waiting_for` says
 * why a queued step is not taken: it (or its run) waits on a concurrency key
 * (`concurrency key tenant=a (2/2 runs running)`), or no active worker of its
 * queue registered its processor (workers that lack it leave its job alone).
 */
export const STEP_COLUMNS = `id, name, processor, queue, status, depends_on, attempt, output, error, created_at, queued_at, started_at, finished_at,
  CASE WHEN steps.status = 'queued' AND steps.options ? 'flow' AND drover.flow_waiting_for(steps.id, steps.run_id) IS NOT NULL
       THEN drover.flow_waiting_for(steps.id, steps.run_id)
       WHEN steps.status = 'queued' AND NOT EXISTS (
         SELECT 1 FROM drover.workers w
          WHERE w.status = 'active' AND steps.queue = ANY (w.queues) AND steps.processor = ANY (w.processors))
       THEN 'no live worker has processor ' || steps.processor || ' for queue ' || steps.queue END AS waiting_for`;

/** A `drover.steps` row as the API shows it. */
export function toStepView(row: any): StepView {
  return {
    id: row.id,
    name: row.name,
    processor: row.processor,
    queue: row.queue,
    status: row.status,
    dependsOn: row.depends_on ?? [],
    attempts: row.attempt,
    output: row.output ?? null,
    // The column keeps the last failed attempt's error; once a later attempt succeeded it is history
    // (the audit trail's step.attempt_failed events keep it), not the step's error.
    error: row.status === 'succeeded' ? null : row.error ?? null,
    createdAt: isoTime(row.created_at)!,
    queuedAt: isoTime(row.queued_at),
    startedAt: isoTime(row.started_at),
    finishedAt: isoTime(row.finished_at),
    ...(row.waiting_for ? { waitingFor: row.waiting_for as string } : {}),
  };
}

/** A `drover.workers` row as the API shows it. */
export function toWorkerView(row: any): WorkerView {
  return {
    id: row.id,
    hostname: row.hostname,
    pid: row.pid,
    queues: row.queues,
    concurrency: row.concurrency,
    version: row.version,
    processors: row.processors ?? [],
    startedAt: isoTime(row.started_at)!,
    lastHeartbeatAt: isoTime(row.last_heartbeat_at)!,
    status: row.status,
  };
}
