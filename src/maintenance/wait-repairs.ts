import type { Logger } from 'pino';
import { appendAudit, type AuditRow } from '../audit/audit';
import type { Sql } from '../db/sql';
import type { Dispatcher } from '../queue/dispatcher';
import type { Metrics } from '../telemetry/metrics';
import { cancelOpenSteps, finishRuns } from '../runs/run-store';
import { READY_COLUMNS, toReadyStep, type ReadyStep } from '../steps/ready-step';
import { settleAfterFailure } from '../waits/join';
import { createOnFailureSteps } from '../waits/on-failure';

const ACTOR = 'reconciler';

/** Where a keyset scan stands (Postgres' text of a timestamp, and an id). */
interface Keyset { at: string; id: string }
const START: Keyset = { at: '-infinity', id: '00000000-0000-0000-0000-000000000000' };
const next = (rows: Array<{ key_at: string; id: string }>, size: number): Keyset =>
  rows.length < size || rows.length === 0 ? START : { at: rows[rows.length - 1].key_at, id: rows[rows.length - 1].id };

/**
 * The reconciler's repairs of waits and dynamic graphs (ARCHITECTURE
 * invariant 11: nothing waits on what cannot arrive). Each scan pages with a
 * cursor kept across passes, so every live row is examined:
 * - a child run whose parent run finished, or whose parent step no longer
 *   waits for it (failed, cancelled, resumed into a new child), is cancelled;
 * - a pending step whose every dependency is terminal (a lost settle) is
 *   queued, or skipped, by its join policy;
 * - a failed run whose workflow has an onFailure step that was never created
 *   (a crash after the run failed) gets it.
 * Sleeps, signal waits and child-run steps are queued steps: a lost job is
 * re-created by the reconciler's queued-step scan, and their handler delays
 * it again to the wake time or the signal's deadline kept in Postgres.
 */
export class WaitRepairs {
  private childrenAfter = START;
  private pendingAfter = START;
  private failedAfter = START;

  constructor(private readonly deps: { sql: Sql; dispatcher: Dispatcher; logger: Logger; metrics: Metrics }, private readonly batchSize: number, private readonly graceMs: number) {}

  /** One pass of every repair; returns how many it made. */
  async run(): Promise<number> {
    const n = (await this.cancelOrphanedChildren()) + (await this.settleStuckPending()) + (await this.createLostOnFailureSteps());
    return n;
  }

  private async cancelOrphanedChildren(): Promise<number> {
    const rows = await this.deps.sql.query(`
      SELECT c.id, c.created_at::text AS key_at, p.status AS parent_status, s.status AS step_status
        FROM drover.runs c JOIN drover.runs p ON p.id = c.parent_run_id LEFT JOIN drover.steps s ON s.id = c.parent_step_id
       WHERE c.parent_run_id IS NOT NULL AND c.finished_at IS NULL AND (c.created_at, c.id) > ($2::timestamptz, $3::uuid)
       ORDER BY c.created_at, c.id LIMIT $1`, [this.batchSize, this.childrenAfter.at, this.childrenAfter.id]);
    this.childrenAfter = next(rows, this.batchSize);
    let repaired = 0;
    for (const row of rows) {
      const parentOpen = row.parent_status === 'pending' || row.parent_status === 'running';
      const stepWaits = row.step_status === 'queued' || row.step_status === 'running';
      if (parentOpen && stepWaits) continue;
      const reason = parentOpen ? `its parent step is ${row.step_status ?? 'gone'}` : `its parent run is ${row.parent_status}`;
      const cancelled = await this.deps.sql.transaction(async (tx) => {
        const [run] = await tx.query(`
          UPDATE drover.runs SET status = 'cancelled', open_steps = 0, finished_at = now()
           WHERE id = $1 AND status IN ('pending', 'running') RETURNING id`, [row.id]);
        if (!run) return undefined;
        const steps = await cancelOpenSteps(tx, row.id);
        await appendAudit(tx, row.id, ACTOR, [
          ['run.cancelled', null, { reason }],
          ...steps.map((s): AuditRow => ['step.cancelled', s.id, { reason: 'run cancelled', previous: s.previous }]),
        ]);
        return steps;
      });
      if (!cancelled) continue;
      await this.deps.dispatcher.remove(cancelled.filter((s) => s.previous === 'queued'));
      repaired++;
    }
    if (repaired) this.deps.metrics.reconcilerRepairs.inc({ kind: 'child_cancelled' }, repaired);
    return repaired;
  }

  private async settleStuckPending(): Promise<number> {
    const rows = await this.deps.sql.query(`
      SELECT s.id, s.run_id, s.name, s.created_at::text AS key_at, COALESCE(s.options->>'join', 'all_succeeded') AS join_policy,
             bool_and(p.status = 'succeeded') AS all_ok, bool_or(p.status = 'succeeded') AS any_ok
        FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id
        JOIN drover.steps p ON p.run_id = s.run_id AND p.name = ANY (s.depends_on)
       WHERE s.status = 'pending' AND s.finished_at IS NULL AND r.status IN ('pending', 'running')
         AND s.created_at < now() - make_interval(secs => $4::double precision / 1000)
         AND (s.created_at, s.id) > ($2::timestamptz, $3::uuid)
       GROUP BY s.id, s.run_id, s.name, s.created_at, s.options
      HAVING bool_and(p.status IN ('succeeded', 'failed', 'cancelled', 'skipped'))
       ORDER BY s.created_at, s.id LIMIT $1`, [this.batchSize, this.pendingAfter.at, this.pendingAfter.id, this.graceMs]);
    // The page of stuck steps only: a backlog of healthy pending steps is not paged here (they are not selected).
    this.pendingAfter = next(rows, this.batchSize);
    let repaired = 0;
    for (const row of rows) {
      const runnable = row.join_policy === 'all_settled' || (row.join_policy === 'any_succeeded' ? row.any_ok : row.all_ok);
      const ready = await this.deps.sql.transaction(async (tx): Promise<ReadyStep[] | undefined> => {
        const [run] = await tx.query(`SELECT priority, workflow FROM drover.runs WHERE id = $1 AND status IN ('pending', 'running') FOR NO KEY UPDATE`, [row.run_id]);
        if (!run) return undefined;
        if (runnable) {
          const [step] = await tx.query(`
            UPDATE drover.steps SET status = 'queued', deps_remaining = 0, queued_at = now() WHERE id = $1 AND status = 'pending'
            RETURNING ${READY_COLUMNS}`, [row.id]);
          if (!step) return undefined;
          await appendAudit(tx, row.run_id, ACTOR, [['step.queued', row.id, { reason: 'every dependency had settled' }]]);
          return [toReadyStep(step, run.priority, run.workflow)];
        }
        const [skipped] = await tx.query(`UPDATE drover.steps SET status = 'skipped', finished_at = now() WHERE id = $1 AND status = 'pending' RETURNING id`, [row.id]);
        if (!skipped) return undefined;
        const settled = await settleAfterFailure(tx, row.run_id, row.name);
        await tx.query(`UPDATE drover.runs SET open_steps = GREATEST(open_steps - $2::int, 0) WHERE id = $1`, [row.run_id, 1 + settled.skipped.length]);
        await appendAudit(tx, row.run_id, ACTOR, [
          ['step.skipped', row.id, { reason: 'no dependency can succeed any more' }],
          ...settled.skipped.map((k): AuditRow => ['step.skipped', k.id, { because: row.name }]),
          ...settled.promoted.map((p): AuditRow => ['step.queued', p.id, { because: row.name }]),
        ]);
        await finishRuns(tx, [row.run_id], ACTOR);
        return settled.promoted;
      });
      if (!ready) continue;
      await this.deps.dispatcher.enqueue(ready);
      repaired++;
    }
    if (repaired) this.deps.metrics.reconcilerRepairs.inc({ kind: 'pending_settled' }, repaired);
    return repaired;
  }

  private async createLostOnFailureSteps(): Promise<number> {
    const rows = await this.deps.sql.query(`
      SELECT r.id, r.created_at::text AS key_at FROM drover.runs r
       WHERE r.status = 'failed' AND r.definition ? 'onFailure' AND (r.created_at, r.id) > ($2::timestamptz, $3::uuid)
         AND NOT EXISTS (SELECT 1 FROM drover.steps s WHERE s.run_id = r.id AND s.name = r.definition->'onFailure'->>'name')
       ORDER BY r.created_at, r.id LIMIT $1`, [this.batchSize, this.failedAfter.at, this.failedAfter.id]);
    this.failedAfter = next(rows, this.batchSize);
    if (rows.length === 0) return 0;
    const ready = await createOnFailureSteps(this.deps.sql, rows.map((r) => r.id), ACTOR);
    await this.deps.dispatcher.enqueue(ready);
    if (ready.length) this.deps.metrics.reconcilerRepairs.inc({ kind: 'on_failure_created' }, ready.length);
    return ready.length;
  }
}
