import type { Queryable } from '../db/sql';
import { invalidRequest, notFound } from '../errors';
import { isUuid } from '../json';

/** Rows per page of a step's logs or elements when `limit` is not given. */
export const DEFAULT_PAGE = 100;

/**
 * The paging options of a step's pages (logs, map elements), checked: an
 * unknown parameter, a `limit` outside 1…`maxLimit` or a `cursor` not matching
 * `cursorPattern` is a 400 `invalid_request` naming what is wrong.
 */
export function pagingOf(query: Record<string, unknown>, allowed: readonly string[], maxLimit: number, cursorPattern: RegExp): { limit: number; cursor: string | undefined } {
  for (const key of Object.keys(query)) if (!allowed.includes(key)) throw invalidRequest(`unknown query parameter "${key}" (allowed: ${allowed.join(', ')})`);
  const limitText = query.limit === undefined ? String(DEFAULT_PAGE) : String(query.limit);
  if (!/^\d{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > maxLimit) throw invalidRequest(`limit must be a whole number from 1 to ${maxLimit}`);
  const cursor = query.cursor;
  if (cursor !== undefined && (typeof cursor !== 'string' || !cursorPattern.test(cursor))) throw invalidRequest('cursor must be the nextCursor of a previous page');
  return { limit: Number(limitText), cursor: cursor as string | undefined };
}

/** A run's step by name (`columns` of it); `not_found` naming the run or the step that is missing. */
export async function stepOfRun(q: Queryable, runId: string, stepName: string, columns: string): Promise<Record<string, any>> {
  if (!isUuid(runId)) throw notFound('run');
  const [step] = await q.query(`SELECT ${columns} FROM drover.steps WHERE run_id = $1 AND name = $2`, [runId, String(stepName)]);
  if (step) return step;
  const [run] = await q.query(`SELECT 1 FROM drover.runs WHERE id = $1`, [runId]);
  throw notFound(run ? `step "${stepName}" of run ${runId}` : 'run');
}
