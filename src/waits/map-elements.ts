import type { Queryable } from '../db/sql';
import { invalidRequest, notAMapStep } from '../errors';
import { isoTime } from '../json';
import { pagingOf, stepOfRun } from '../steps/step-pages';
import { STEP_STATUSES, type StepStatus } from '../states';
import { MAX_MAP_ELEMENTS, WAIT_PROCESSORS } from './kinds';

/** The most elements one page of `GET /api/runs/:id/steps/:name/elements` returns. */
export const MAX_ELEMENT_PAGE = 1000;

/** One element of a map step (a step row of its own, named `<map>[<index>]`). */
export interface MapElementView {
  index: number;
  /** `<map>[<index>]`, the name its audit events and logs go by. */
  name: string;
  status: StepStatus;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  output: unknown;
  /** The error that failed it (null once it succeeded, as for any step). */
  error: unknown;
}

/** A page of a map step's elements by index; `nextCursor` reads on (null: no more). */
export interface MapElementPage {
  items: MapElementView[];
  nextCursor: string | null;
}

/**
 * `status` (one step status, or several comma-separated: `failed,cancelled`),
 * `limit` (1 to 1 000, default 100) and `cursor` (the `nextCursor` of the page before).
 */
export interface MapElementQuery {
  status?: string;
  limit?: number | string;
  cursor?: string;
}

/** The paging options, checked: 400 `invalid_request` naming what is wrong. */
function parseQuery(query: MapElementQuery): { statuses: string[] | null; limit: number; after: number } {
  const { limit, cursor } = pagingOf(query as Record<string, unknown>, ['status', 'limit', 'cursor'], MAX_ELEMENT_PAGE, /^\d{1,5}$/);
  if (cursor !== undefined && Number(cursor) >= MAX_MAP_ELEMENTS) throw invalidRequest('cursor must be the nextCursor of a previous page');
  let statuses: string[] | null = null;
  if (query.status !== undefined) {
    const text = query.status;
    const list = typeof text === 'string' ? text.split(',') : [];
    const bad = typeof text !== 'string' || list.some((s) => !(STEP_STATUSES as readonly string[]).includes(s));
    if (bad) throw invalidRequest(`status must be one of ${STEP_STATUSES.join(', ')} (or several, comma-separated)`);
    statuses = list;
  }
  return { statuses, limit, after: cursor === undefined ? -1 : Number(cursor) };
}

/**
 * The elements of a run's map step, by index, a page at a time (keyset on
 * the index: pages stay stable while elements finish). `not_found` for an
 * unknown run or step, `not_a_map_step` for a step of another kind, 400 for
 * bad paging options. Reads the `(map_of, map_index)` index.
 */
export async function listMapElements(q: Queryable, runId: string, stepName: string, query: MapElementQuery = {}): Promise<MapElementPage> {
  const { statuses, limit, after } = parseQuery(query);
  const step = await stepOfRun(q, runId, stepName, 'id, processor, map_of');
  if (step.processor !== WAIT_PROCESSORS.map) {
    throw notAMapStep(step.map_of ? `step "${stepName}" is an element of a map step, not a map step`
      : `step "${stepName}" is not a map step (its processor is ${step.processor}): only a map step has elements`);
  }
  const rows = await q.query(`
    SELECT map_index, name, status, attempt, started_at, finished_at, output, error FROM drover.steps
     WHERE map_of = $1 AND map_index > $2 AND ($3::text[] IS NULL OR status = ANY ($3::text[]))
     ORDER BY map_index LIMIT $4`, [step.id, after, statuses, limit + 1]);
  const items = rows.slice(0, limit).map((r): MapElementView => ({
    index: r.map_index,
    name: r.name,
    status: r.status,
    attempts: r.attempt,
    startedAt: isoTime(r.started_at),
    finishedAt: isoTime(r.finished_at),
    output: r.output ?? null,
    error: r.status === 'succeeded' ? null : r.error ?? null,
  }));
  return { items, nextCursor: rows.length > limit ? String(items[items.length - 1].index) : null };
}
