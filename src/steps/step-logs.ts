import type { Queryable } from '../db/sql';
import { isoTime } from '../json';
import { pagingOf, stepOfRun } from './step-pages';

/** The longest log line kept, in characters (longer ones are cut). */
export const MAX_LOG_LINE_CHARS = 8192;
/** Lines kept per attempt; the rest are dropped, and one line says so. */
export const MAX_LOG_LINES_PER_ATTEMPT = 10_000;
/** The most lines one page of `GET /api/runs/:id/steps/:name/logs` returns. */
export const MAX_LOG_PAGE = 1000;

/** One `ctx.log` line. */
export interface StepLogLine {
  id: string;
  at: string;
  attempt: number;
  message: string;
}

/** A page of a step's log, oldest first; `nextCursor` reads on (null at the end so far). */
export interface StepLogPage {
  items: StepLogLine[];
  nextCursor: string | null;
}

/** `limit` (1 to 1 000, default 100) and `cursor` (the `nextCursor` of the page before). */
export interface StepLogQuery {
  limit?: number | string;
  cursor?: string;
}

/** A line as stored: cut to its bound, without NUL (Postgres text refuses it). */
export function logLine(message: unknown): string {
  return String(message).slice(0, MAX_LOG_LINE_CHARS).replace(/\u0000/g, '');
}

/** Appends one line of a step's attempt. */
export async function appendStepLog(q: Queryable, line: { runId: string; stepId: string; attempt: number; message: string }): Promise<void> {
  await q.query(`INSERT INTO drover.step_logs (run_id, step_id, attempt, message) VALUES ($1, $2, $3, $4)`, [line.runId, line.stepId, line.attempt, line.message]);
}

/** The lines of a run's step by its name, oldest first; `not_found` for an unknown run or step, 400 for a bad limit or cursor. */
export async function readStepLogs(q: Queryable, runId: string, stepName: string, query: StepLogQuery = {}): Promise<StepLogPage> {
  const { limit, cursor } = pagingOf(query as Record<string, unknown>, ['limit', 'cursor'], MAX_LOG_PAGE, /^\d{1,18}$/);
  const step = await stepOfRun(q, runId, stepName, 'id');
  const rows = await q.query(`
    SELECT id::text AS id, at, attempt, message FROM drover.step_logs WHERE step_id = $1 AND step_logs.id > $2::bigint ORDER BY step_logs.id LIMIT $3`,
  [step.id, cursor ?? '0', limit + 1]);
  const items = rows.slice(0, limit).map((r) => ({ id: r.id as string, at: isoTime(r.at)!, attempt: r.attempt as number, message: r.message as string }));
  return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
}
