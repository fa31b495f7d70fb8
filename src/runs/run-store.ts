import { appendAudit, INSERT_AUDIT, type AuditRow } from '../audit/audit';
import { hotQuery, type Queryable, type Sql } from '../db/sql';
import { READY_COLUMNS, toReadyStep, type ReadyStep } from '../steps/ready-step';

/** A step moved to `cancelled` whose job may still sit in the queue. */
export interface CancelledStep {
  id: string;
  queue: string;
  generation: number;
  previous: string;
}

/**
 * The transitions of a run as a whole: finish, cancel, resume. Each takes the
 * run row before any of its steps (the lock order, stated atop StepStore).
 */
export class RunStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Cancels a run: open steps → `cancelled` (running ones see their signal
   * abort through the worker's lease check), run → `cancelled`.
   * `data` goes with the `run.cancelled` event (why, when not an operator's cancel).
   * @returns null when the run is not open (the caller answers invalid_state).
   */
  async cancelRun(runId: string, actor: string, data: Record<string, unknown> | null = null): Promise<CancelledStep[] | null> {
    return this.sql.transaction(async (tx) => {
      const [run] = await tx.query(`
        UPDATE drover.runs SET status = 'cancelled', open_steps = 0, finished_at = now()
         WHERE id = $1 AND status IN ('pending', 'running') RETURNING id`, [runId]);
      if (!run) throw new NotOpen();
      const steps = await cancelOpenSteps(tx, runId);
      await appendAudit(tx, runId, actor, [
        ['run.cancelled', null, data],
        ...steps.map((s): AuditRow => ['step.cancelled', s.id, { reason: 'run cancelled', previous: s.previous }]),
      ]);
      return steps;
    }).catch((error) => {
      if (error instanceof NotOpen) return null;
      throw error;
    });
  }

  /**
   * Resumes a `failed` or `cancelled` run: its failed, cancelled and skipped
   * steps start again with fresh attempts under a new generation (a new job id);
   * succeeded steps keep their outputs; steps whose dependencies have all
   * succeeded are queued at once.
   * @returns the steps to enqueue, or null when the run is not resumable.
   */
  async retryRun(runId: string, actor: string): Promise<ReadyStep[] | null> {
    return this.sql.transaction(async (tx) => {
      const [run] = await tx.query(`SELECT status, priority, workflow FROM drover.runs WHERE id = $1 FOR NO KEY UPDATE`, [runId]);
      if (!run || (run.status !== 'failed' && run.status !== 'cancelled')) return null;
      const reset = await tx.query(`
        UPDATE drover.steps SET status = 'pending', attempt = 0, generation = generation + 1, error = NULL, output = NULL,
               lease = NULL, worker_id = NULL, queued_at = NULL, started_at = NULL, finished_at = NULL, wake_at = NULL
         WHERE run_id = $1 AND status IN ('failed', 'cancelled', 'skipped')
        RETURNING id`, [runId]);
      const ready = await tx.query(`
        UPDATE drover.steps c SET
          deps_remaining = x.remaining,
          status = CASE WHEN x.remaining = 0 THEN 'queued' ELSE 'pending' END,
          queued_at = CASE WHEN x.remaining = 0 THEN now() ELSE NULL END
          FROM (SELECT s.id, (SELECT CASE WHEN s.options->>'join' = 'any_succeeded' AND bool_or(p.status = 'succeeded') THEN 0
                                          ELSE count(*) FILTER (WHERE p.status <> 'succeeded') END FROM drover.steps p
                               WHERE p.run_id = s.run_id AND p.name = ANY (s.depends_on))::int AS remaining
                  FROM drover.steps s WHERE s.id = ANY ($1::uuid[])) x
         WHERE c.id = x.id
        RETURNING ${READY_COLUMNS.split(', ').map((c) => `c.${c}`).join(', ')}, c.status`, [reset.map((r) => r.id)]);
      await tx.query(`
        -- A run cancelled before it ever started goes back to pending: its first start writes run.started and startedAt.
        UPDATE drover.runs SET status = CASE WHEN started_at IS NULL THEN 'pending' ELSE 'running' END, open_steps = $2, failed_steps = 0,
               error = NULL, finished_at = NULL
         WHERE id = $1`, [runId, reset.length]);
      const queued = ready.filter((r) => r.status === 'queued');
      await appendAudit(tx, runId, actor, [
        ['run.retried', null, { steps: reset.length }],
        ...queued.map((r): AuditRow => ['step.queued', r.id, null]),
      ]);
      return queued.map((r) => toReadyStep(r, run.priority, run.workflow));
    });
  }
}

/**
 * Finishes runs whose steps are all terminal, in one statement: `succeeded`
 * with the outputs of their sink steps, or `failed` with a `RunError`: the
 * failed steps, and the first of them to fail for good (`step`, by
 * `finished_at` then name) with its error's `code` when it has one.
 * (A statement of its own after the last transition committed, so its snapshot
 * sees every step's final row.) Fenced on the run being open with no open
 * steps, so calling it twice is harmless.
 * @returns the final status of each run it finished (absent: not finishable).
 */
export async function finishRuns(q: Queryable, runIds: string[], actor: string): Promise<Map<string, 'succeeded' | 'failed'>> {
  const rows = await hotQuery(q, 'drover_finish_runs', `
    WITH l AS (
      SELECT id FROM drover.runs WHERE id = ANY ($1::uuid[]) AND status IN ('pending', 'running') AND open_steps = 0
       ORDER BY id FOR NO KEY UPDATE
    ), r AS (
      UPDATE drover.runs SET
        status = CASE WHEN failed_steps > 0 THEN 'failed' ELSE 'succeeded' END,
        finished_at = now(),
        output = CASE WHEN failed_steps > 0 THEN output ELSE (
          SELECT COALESCE(jsonb_object_agg(st.name, st.output), '{}'::jsonb) FROM drover.steps st
           WHERE st.run_id = runs.id AND st.sink) END,
        error = CASE WHEN failed_steps > 0 THEN (
          SELECT jsonb_build_object('message', 'failed steps: ' || string_agg(f.name, ', ' ORDER BY f.name),
                                    'failedSteps', jsonb_agg(f.name ORDER BY f.name))
                 || COALESCE((SELECT jsonb_strip_nulls(jsonb_build_object('step', f1.name, 'code', f1.error->>'code'))
                                FROM drover.steps f1 WHERE f1.run_id = runs.id AND f1.status = 'failed'
                               ORDER BY f1.finished_at, f1.name LIMIT 1), '{}'::jsonb)
            FROM drover.steps f WHERE f.run_id = runs.id AND f.status = 'failed') END
       WHERE id = ANY (ARRAY(SELECT id FROM l)) AND status IN ('pending', 'running') AND open_steps = 0
      RETURNING id, status
    )
    ${INSERT_AUDIT}
    SELECT 'run.' || r.status, r.id, NULL, $2, NULL FROM r
    RETURNING run_id, type`, [runIds, actor]);
  return new Map(rows.map((row) => [row.run_id as string, row.type.slice(4) as 'succeeded' | 'failed']));
}

/**
 * Moves every open step of a run to `cancelled`; returns them with their
 * previous state. The caller holds the run row (the lock order).
 */
export function cancelOpenSteps(tx: Queryable, runId: string): Promise<CancelledStep[]> {
  return tx.query(`
    UPDATE drover.steps st SET status = 'cancelled', finished_at = now()
      FROM (SELECT id, status FROM drover.steps
             WHERE run_id = $1 AND status IN ('pending', 'queued', 'running') ORDER BY id FOR NO KEY UPDATE) o
     WHERE st.id = o.id
    RETURNING st.id, st.queue, st.generation, o.status AS previous`, [runId]);
}

class NotOpen extends Error {}
