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
  // Waits and dynamic graphs (src/waits/): a sleep or signal wait began, a signal arrived, a child run or a map's elements started.
  'step.sleeping', 'step.waiting', 'run.signal_received', 'step.child_started', 'step.map_started', 'run.child_cancelled',
  // Flow control: a run or step waits on a concurrency key, or is given its place.
  'flow.waiting', 'flow.admitted',
  // Operators' actions through Bull Board (read-write mode): on a whole queue (no run), or on one job.
  'queue.paused', 'queue.resumed', 'queue.emptied', 'queue.cleaned', 'queue.obliterated', 'job.removed',
  // Schedules (no run): made, changed, paused, resumed, deleted, and a tick skipped by its overlap policy.
  'schedule.created', 'schedule.updated', 'schedule.deleted', 'schedule.paused', 'schedule.resumed', 'schedule.skipped',
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

/** The types of `QueueEvent`s. */
export type QueueEventType = Extract<AuditEventType, `queue.${string}` | `job.${string}`>;

/**
 * An operator's action on the queues (Bull Board in read-write mode). `runId`
 * and `stepId` are set only for a job whose step was found in that run;
 * queue-wide actions have none.
 */
export interface QueueEvent {
  type: QueueEventType;
  runId: string | null;
  stepId: string | null;
  data: Record<string, unknown>;
}

/** Appends operators' queue actions by one actor in one statement. */
export async function appendQueueEvents(q: Queryable, actor: string, events: QueueEvent[]): Promise<void> {
  if (events.length === 0) return;
  await q.query(`
    ${INSERT_AUDIT}
    SELECT t, r, s, $1, d FROM unnest($2::text[], $3::uuid[], $4::uuid[], $5::jsonb[]) WITH ORDINALITY AS e(t, r, s, d, n) ORDER BY n`,
  [actor, events.map((e) => e.type), events.map((e) => e.runId), events.map((e) => e.stepId), events.map((e) => JSON.stringify(e.data))]);
}

/** The types of schedule events (they belong to no run). */
export type ScheduleEventType = Extract<AuditEventType, `schedule.${string}`>;

/** Appends schedule events (no run) by one actor in one statement. */
export async function appendScheduleEvents(q: Queryable, actor: string, events: Array<{ type: ScheduleEventType; data: Record<string, unknown> }>): Promise<void> {
  if (events.length === 0) return;
  await q.query(`
    ${INSERT_AUDIT}
    SELECT t, NULL, NULL, $1, d FROM unnest($2::text[], $3::jsonb[]) WITH ORDINALITY AS e(t, d, n) ORDER BY n`,
  [actor, events.map((e) => e.type), events.map((e) => JSON.stringify(e.data))]);
}

/** The latest operators' queue actions (events without a run), newest first. */
export async function readQueueEvents(q: Queryable, limit = 100): Promise<QueueEventView[]> {
  const rows = await q.query(`SELECT id, at, type, run_id, step_id, actor, data FROM drover.audit_events WHERE run_id IS NULL AND type NOT LIKE 'schedule.%' ORDER BY id DESC LIMIT $1`, [limit]);
  return rows.map(toAuditView);
}

/** An audit event that may belong to no run (an operator's action on a whole queue). */
export type QueueEventView = Omit<AuditEventView, 'runId'> & { runId: string | null };

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

/**
 * The trail of one run, oldest first, each event with its step's name (joined
 * here, in the read: the hot path writes only the step id).
 */
export async function readAudit(q: Queryable, runId: string): Promise<AuditEventView[]> {
  const rows = await q.query(`
    SELECT e.id, e.at, e.type, e.run_id, e.step_id, s.name AS step_name, e.actor, e.data
      FROM drover.audit_events e
      LEFT JOIN drover.steps s ON s.id = e.step_id
     WHERE e.run_id = $1
     ORDER BY e.id`, [runId]);
  return rows.map(toAuditView);
}

/** A `drover.audit_events` row (with `step_name` when joined) as the API shows it. */
export function toAuditView(row: any): AuditEventView {
  return {
    id: String(row.id),
    at: isoTime(row.at)!,
    type: row.type,
    runId: row.run_id,
    stepId: row.step_id ?? null,
    stepName: row.step_name ?? null,
    actor: row.actor,
    data: row.data ?? null,
  };
}

/** The runs whose events were written after an event id (see `runsChangedSince`). */
export interface RunsChanged {
  /** The highest event id read (the next call's `afterId`); null when the table is empty. */
  lastId: string | null;
  /** The events read (id and run), oldest first; an overlapping read returns some again. */
  events: Array<{ id: string; runId: string }>;
  /** More than `limit` events were written: treat every run as changed. */
  overflow: boolean;
}

/**
 * The runs that got events after `afterId` (null: a baseline, the current
 * highest id and the `overlap` events up to it), read from the primary key. Reads back `overlap` ids
 * before `afterId` too: identity ids are taken before commit, so a
 * transaction may commit an id lower than one already read.
 */
export async function runsChangedSince(q: Queryable, afterId: string | null, limit = 2000, overlap = 200): Promise<RunsChanged> {
  if (afterId === null) {
    // The baseline: the newest id, and the events of the overlap window below it (already told, not changes).
    const rows = await q.query(`SELECT id::text AS id, run_id FROM drover.audit_events ORDER BY id DESC LIMIT $1`, [overlap]);
    return { lastId: rows[0]?.id ?? '0', events: rows.reverse().map((r) => ({ id: r.id as string, runId: r.run_id as string })), overflow: false };
  }
  const rows = await q.query(`
    SELECT id::text AS id, run_id FROM drover.audit_events WHERE id > $1::bigint - $2::bigint ORDER BY id LIMIT $3`,
  [afterId, overlap, limit + 1]);
  const overflow = rows.length > limit;
  if (overflow) {
    const [row] = await q.query(`SELECT max(id)::text AS id FROM drover.audit_events`);
    return { lastId: row.id, events: [], overflow: true };
  }
  const last = rows.length ? rows[rows.length - 1].id : afterId;
  return {
    lastId: BigInt(last) > BigInt(afterId) ? last : afterId,
    events: rows.map((r) => ({ id: r.id as string, runId: r.run_id as string })),
    overflow: false,
  };
}

/** The newest `limit` events of a run, oldest first, and whether older ones were left out. */
export async function readAuditTail(q: Queryable, runId: string, limit: number): Promise<{ items: AuditEventView[]; truncated: boolean }> {
  const rows = await q.query(`SELECT id, at, type, run_id, step_id, actor, data FROM drover.audit_events WHERE run_id = $1 ORDER BY id DESC LIMIT $2`, [runId, limit + 1]);
  return { items: rows.slice(0, limit).reverse().map(toAuditView), truncated: rows.length > limit };
}

/** The events of one step and its run's resumes (`run.retried`), oldest first, at most `limit`. */
export async function readStepAudit(q: Queryable, runId: string, stepId: string, limit: number): Promise<AuditEventView[]> {
  const rows = await q.query(`
    SELECT id, at, type, run_id, step_id, actor, data FROM drover.audit_events
     WHERE run_id = $1 AND (step_id = $2 OR type = 'run.retried') ORDER BY id LIMIT $3`, [runId, stepId, limit]);
  return rows.map(toAuditView);
}

/**
 * Steps that succeeded and failed (for good) per minute since `since`, from
 * their events. The first event at or after `since` is found by a binary
 * search on the primary key (ids follow insertion time), so the count reads
 * only the period's events.
 */
export async function stepOutcomesPerMinute(q: Queryable, since: Date): Promise<Array<{ minute: Date; succeeded: number; failed: number }>> {
  const [bounds] = await q.query(`
    SELECT (SELECT id FROM drover.audit_events ORDER BY id LIMIT 1) AS lo,
           (SELECT id FROM drover.audit_events ORDER BY id DESC LIMIT 1) AS hi`);
  if (bounds.lo === null) return [];
  let lo = BigInt(bounds.lo);
  let hi = BigInt(bounds.hi) + 1n;
  while (lo < hi) {
    const mid = (lo + hi) / 2n;
    const [probe] = await q.query(`SELECT at >= $2 AS recent FROM drover.audit_events WHERE id >= $1 ORDER BY id LIMIT 1`, [mid.toString(), since]);
    if (!probe || probe.recent) hi = mid;
    else lo = mid + 1n;
  }
  const rows = await q.query(`
    SELECT date_trunc('minute', at) AS minute, count(*) FILTER (WHERE type = 'step.succeeded')::int AS succeeded,
           count(*) FILTER (WHERE type = 'step.failed')::int AS failed
      FROM drover.audit_events WHERE id >= $1 AND at >= $2 AND type IN ('step.succeeded', 'step.failed')
     GROUP BY 1`, [lo.toString(), since]);
  return rows.map((r) => ({ minute: new Date(r.minute), succeeded: r.succeeded, failed: r.failed }));
}
