import type { Queryable } from '../db/sql';
import { READY_COLUMNS, toReadyStep, type ReadyStep } from '../steps/ready-step';

/** What a step that ended without success did to its pending dependents. */
export interface SettleOutcome {
  /** Dependents (and their descendants) that will never run. */
  skipped: Array<{ id: string; name: string; queue: string }>;
  /** `all_settled` dependents whose last parent settled: queued (enqueue after commit). */
  promoted: ReadyStep[];
}

/**
 * A step of the run failed for good (or was skipped): its pending dependents
 * settle by their join policy (CONTRACT §7), level by level down the DAG —
 * `all_succeeded` is skipped; `all_settled` counts the parent as settled and
 * is queued once every parent is terminal; `any_succeeded` counts it as
 * failed and is skipped once no parent can succeed any more. Skipped steps
 * settle their own dependents in the next level. Runs inside the caller's
 * transaction, which holds the run row (the lock order).
 */
export async function settleAfterFailure(tx: Queryable, runId: string, failedName: string): Promise<SettleOutcome> {
  const outcome: SettleOutcome = { skipped: [], promoted: [] };
  let frontier = [failedName];
  let run: { priority: number; workflow: string } | undefined;
  while (frontier.length > 0) {
    const rows = await tx.query(`
      WITH hit AS (
        SELECT c.id, c.deps_remaining - cardinality(ARRAY(SELECT unnest(c.depends_on) INTERSECT SELECT unnest($2::text[])))::int AS remaining,
               COALESCE(c.options->>'join', 'all_succeeded') AS join_policy
          FROM drover.steps c
         WHERE c.run_id = $1 AND c.status = 'pending' AND c.depends_on && $2::text[]
         ORDER BY c.id
      ), next AS (
        SELECT id, GREATEST(remaining, 0) AS remaining,
               CASE WHEN join_policy = 'all_succeeded' THEN 'skipped'
                    WHEN remaining > 0 THEN 'pending'
                    WHEN join_policy = 'all_settled' THEN 'queued'
                    ELSE 'skipped' END AS status
          FROM hit
      )
      UPDATE drover.steps c SET deps_remaining = n.remaining, status = n.status,
             finished_at = CASE WHEN n.status = 'skipped' THEN now() ELSE c.finished_at END,
             queued_at = CASE WHEN n.status = 'queued' THEN now() ELSE c.queued_at END
        FROM next n
       WHERE c.id = n.id
      RETURNING ${READY_COLUMNS.split(', ').map((col) => `c.${col}`).join(', ')}, c.status`, [runId, frontier]);
    frontier = [];
    for (const row of rows) {
      if (row.status === 'skipped') {
        outcome.skipped.push({ id: row.id, name: row.name, queue: row.queue });
        frontier.push(row.name);
      } else if (row.status === 'queued') {
        run ??= (await tx.query(`SELECT priority, workflow FROM drover.runs WHERE id = $1`, [runId]))[0];
        outcome.promoted.push(toReadyStep(row, run?.priority ?? 0, run?.workflow ?? ''));
      }
    }
  }
  return outcome;
}
