import type { Queryable } from '../db/sql';
import { isoTime } from '../json';
import type { AuditEventView } from '../types';

/**
 * The audit log: the one writer of `drover.audit_events`, and its reads. No
 * other module names the table. Events are immutable (a trigger refuses
 * updates) and each is written in the same statement or transaction as the
 * change it records.
 */

/** Every kind of event drover writes. */
export const AUDIT_EVENT_TYPES = [
  'run.created', 'run.started', 'run.succeeded', 'run.failed', 'run.cancelled', 'run.retried',
  'step.queued', 'step.started', 'step.succeeded', 'step.attempt_failed', 'step.failed', 'step.skipped',
  'step.cancelled', 'step.requeued', 'step.reenqueued', 'step.log',
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

/**
 * The head of the INSERT the hot transitions put in their own statement (a
 * data-modifying CTE), followed by a `SELECT type, run_id, step_id, actor,
 * data` of their events: one round trip for the change and its events.
 */
export const INSERT_AUDIT = `INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)`;

/** [type, stepId, data] of one event of a run. */
export type AuditRow = [type: AuditEventType, stepId: string | null, data: unknown];

/** One event of any run (for writes that span runs). */
export interface AuditEvent {
  type: AuditEventType;
  runId: string;
  stepId: string | null;
  data?: unknown;
}

/** Appends events of one run in one statement (ids follow array order). */
export function appendAudit(q: Queryable, runId: string, actor: string, events: AuditRow[]): Promise<void> {
  return appendEvents(q, actor, events.map(([type, stepId, data]) => ({ type, runId, stepId, data })));
}

/** Appends events of any runs by one actor in one statement (ids follow array order). */
export async function appendEvents(q: Queryable, actor: string, events: AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  await q.query(`
    ${INSERT_AUDIT}
    SELECT t, r, s, $1, d FROM unnest($2::text[], $3::uuid[], $4::uuid[], $5::jsonb[]) WITH ORDINALITY AS e(t, r, s, d, n) ORDER BY n`,
  [actor, events.map((e) => e.type), events.map((e) => e.runId), events.map((e) => e.stepId),
    events.map((e) => (e.data === null || e.data === undefined ? null : JSON.stringify(e.data)))]);
}

/** The trail of one run, oldest first. */
export async function readAudit(q: Queryable, runId: string): Promise<AuditEventView[]> {
  const rows = await q.query(`SELECT id, at, type, run_id, step_id, actor, data FROM drover.audit_events WHERE run_id = $1 ORDER BY id`, [runId]);
  return rows.map(toAuditView);
}

/** A `drover.audit_events` row as the API shows it. */
export function toAuditView(row: any): AuditEventView {
  return {
    id: String(row.id),
    at: isoTime(row.at)!,
    type: row.type,
    runId: row.run_id,
    stepId: row.step_id ?? null,
    actor: row.actor,
    data: row.data ?? null,
  };
}
