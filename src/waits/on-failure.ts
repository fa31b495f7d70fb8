import type { Queryable } from '../db/sql';
import { INSERT_AUDIT } from '../audit/audit';
import type { Dispatcher } from '../queue/dispatcher';
import { READY_COLUMNS, toReadyStep, type ReadyStep } from '../steps/ready-step';

/**
 * A workflow's `onFailure` step (CONTRACT §7): once its run has failed, a step
 * row of its own is created `queued` (at most once per run: the row's name is
 * unique in the run) with the run's error and failed steps in its options
 * (`ctx.failure`), and enqueued. It is not one of the run's open steps, so the
 * run stays `failed` while it runs. The reconciler creates the ones a crash
 * lost (`src/maintenance/wait-repairs.ts`).
 */
export class OnFailure {
  constructor(private readonly q: Queryable, private readonly dispatcher: Dispatcher, private readonly actor: string) {}

  /** Creates and enqueues the onFailure step of a failed run (nothing when it has none, or has it already). */
  async runFailed(runId: string): Promise<void> {
    const ready = await createOnFailureSteps(this.q, [runId], this.actor);
    await this.dispatcher.enqueue(ready);
  }
}

/** Creates the missing onFailure steps of failed runs; returns them to enqueue. */
export async function createOnFailureSteps(q: Queryable, runIds: string[], actor: string): Promise<ReadyStep[]> {
  if (runIds.length === 0) return [];
  const rows = await q.query(`
    WITH r AS (
      SELECT id, priority, workflow, error, definition->'onFailure' AS f FROM drover.runs
       WHERE id = ANY ($1::uuid[]) AND status = 'failed' AND definition ? 'onFailure'
    ), s AS (
      INSERT INTO drover.steps (id, run_id, name, processor, queue, status, depends_on, deps_remaining, max_attempts, options, sink, queued_at)
      SELECT gen_random_uuid(), r.id, r.f->>'name', r.f->>'processor', r.f->>'queue', 'queued', '{}', 0, (r.f->>'attempts')::int,
             jsonb_build_object('backoff', r.f->'backoff', 'delayMs', 0, 'timeoutMs', r.f->'timeoutMs', 'priority', 0,
               'failure', jsonb_build_object('error', r.error, 'steps', COALESCE((
                 SELECT jsonb_agg(jsonb_build_object('name', f.name, 'error', f.error) ORDER BY f.name)
                   FROM drover.steps f WHERE f.run_id = r.id AND f.status = 'failed'), '[]'::jsonb))),
             false, now()
        FROM r
      ON CONFLICT (run_id, name) DO NOTHING
      RETURNING ${READY_COLUMNS}
    ), a AS (
      ${INSERT_AUDIT}
      SELECT 'step.queued', s.run_id, s.id, $2, '{"onFailure":true}'::jsonb FROM s
    )
    SELECT s.*, r.priority AS run_priority, r.workflow FROM s JOIN r ON r.id = s.run_id`, [runIds, actor]);
  return rows.map((row) => toReadyStep(row));
}
