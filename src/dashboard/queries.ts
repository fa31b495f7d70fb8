import { readAuditTail, readStepAudit, stepOutcomesPerMinute } from '../audit/audit';
import type { Sql } from '../db/sql';
import { isUuid } from '../json';
import { decodeCursor, encodeCursor } from '../runs/run-service';
import { RUN_COLUMNS, STEP_COLUMNS, toRunView, toStepView, toWorkerView } from '../runs/views';
import type { AuditEventView, ResolvedWorkflow, RunView, StepView, WorkerView } from '../types';
import { SINCE_CHOICES, type RunsPageQuery } from './params';
import { runLinks, splitElements, type RunLinks } from '../waits/run-links';

/** The newest runs the status counts of the list are taken among. */
export const COUNT_WINDOW = 10_000;
/** Events a run page shows at most (the newest). */
export const AUDIT_PAGE = 1_000;

/** A page of the runs list. */
export interface RunsListPage {
  items: RunView[];
  nextCursor: string | null;
}

/** Runs per status (matching the filters, status aside) among the newest `window` runs. */
export interface StatusCounts {
  counts: Record<string, number>;
  /** How many runs the window held (less than `window`: it held every run). */
  counted: number;
  window: number;
}

/** A step of a run page, with the columns the panel needs beyond the API view. */
export type RunPageStep = StepView & { generation: number; maxAttempts: number };

/** Everything a run page shows. */
export interface RunPageData {
  run: RunView & { workflowVersion: string; definition: ResolvedWorkflow };
  steps: RunPageStep[];
  /** Oldest first; the newest `AUDIT_PAGE` when `truncated`. */
  audit: AuditEventView[];
  truncated: boolean;
  /** Its parent run and child runs. */
  links: RunLinks;
  /** Each map step's elements, by map step name, in index order. */
  elements: Map<string, RunPageStep[]>;
}

/** A worker as the registry shows it, with how many steps it is running now. */
export type WorkerRow = WorkerView & { activeSteps: number };

/** Steps finished and failed in one minute. */
export interface MinuteBucket {
  minute: Date;
  succeeded: number;
  failed: number;
}

/**
 * The read queries of the runs dashboard. Each page is a handful of indexed
 * statements: the list reads one keyset page from `runs_created_idx` (or the
 * workflow, workspace, unfinished or finished-status index a filter names),
 * and its status counts cover a bounded window of the newest runs rather than
 * counting a million rows.
 */
export class DashboardQueries {
  constructor(private readonly sql: Sql) {}

  /** One page of runs, newest first, keyset-paginated like `GET /api/runs`; only `workspaces`' runs when given (a key's limit). */
  async listRuns(q: RunsPageQuery, limit = 25, workspaces: readonly string[] | null = null): Promise<RunsListPage> {
    const { where, params } = filters(q, true, 0, workspaces);
    if (q.cursor) {
      const cursor = decodeCursor(q.cursor);
      params.push(cursor.at, cursor.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(limit + 1);
    const rows = await this.sql.query(`
      SELECT ${RUN_COLUMNS}, created_at::text AS cursor_at FROM drover.runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`, params);
    const more = rows.length > limit;
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items: items.map(toRunView), nextCursor: more && last ? encodeCursor(last.cursor_at, last.id) : null };
  }

  /**
   * Counts per status of the runs matching the filters (status aside) among
   * the newest `COUNT_WINDOW` runs (created within `since`, when given). The
   * window is taken first, from `runs_created_idx`, so the cost is the same
   * bounded scan whatever the filters; a search counts its few matches.
   * With `workspaces` (a key's limit) the window is of those workspaces' runs.
   */
  async statusCounts(q: RunsPageQuery, workspaces: readonly string[] | null = null): Promise<StatusCounts> {
    const search = Boolean(q.q);
    const inner = filters(search ? { ...q, status: undefined } : { since: q.since }, false, 0, workspaces);
    const outer = search ? { where: [] as string[], params: [] as unknown[] } : filters({ workflow: q.workflow, workspace: q.workspace }, false, inner.params.length);
    const params = [...inner.params, ...outer.params, COUNT_WINDOW];
    const rows = await this.sql.query<{ status: string; n: number; matched: number }>(`
      SELECT status, count(*) FILTER (WHERE matches)::int AS n, count(*)::int AS windowed FROM (
        SELECT status, ${outer.where.length ? outer.where.join(' AND ') : 'true'} AS matches
          FROM drover.runs ${inner.where.length ? `WHERE ${inner.where.join(' AND ')}` : ''}
         ORDER BY created_at DESC, id DESC LIMIT $${params.length}) w
       GROUP BY status`, params);
    const counts: Record<string, number> = {};
    let windowed = 0;
    for (const r of rows) {
      counts[r.status] = r.n;
      windowed += (r as unknown as { windowed: number }).windowed;
    }
    return { counts, counted: windowed, window: COUNT_WINDOW };
  }

  /** A run with its definition snapshot, steps and audit trail; undefined when there is none, or it is outside `workspaces` (a key's limit). */
  async runPage(id: string, workspaces: readonly string[] | null = null): Promise<RunPageData | undefined> {
    if (!isUuid(id)) return undefined;
    const [row] = await this.sql.query(`SELECT ${RUN_COLUMNS}, workflow_version, definition FROM drover.runs WHERE id = $1`, [id]);
    if (!row || (workspaces && !workspaces.includes(row.workspace))) return undefined;
    const [stepRows, audit] = await Promise.all([
      this.sql.query(`SELECT ${STEP_COLUMNS}, generation, max_attempts FROM drover.steps WHERE run_id = $1`, [id]),
      readAuditTail(this.sql, id, AUDIT_PAGE),
    ]);
    const definition = row.definition as ResolvedWorkflow;
    const order = new Map(definition.steps.map((s, i) => [s.name, i]));
    stepRows.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
    const links = await runLinks(this.sql, id, new Map(stepRows.map((s) => [s.id, s.name])));
    const { steps, elements } = splitElements(stepRows.map((s): RunPageStep => ({ ...toStepView(s), generation: s.generation, maxAttempts: s.max_attempts })), links.children);
    return {
      run: { ...toRunView(row), workflowVersion: row.workflow_version, definition },
      steps,
      audit: audit.items,
      truncated: audit.truncated,
      links,
      elements,
    };
  }

  /** Whether a run exists and is inside `workspaces` (a key's limit; null: any workspace). */
  async runVisible(id: string, workspaces: readonly string[] | null): Promise<boolean> {
    if (!isUuid(id)) return false;
    const [row] = await this.sql.query(`SELECT workspace FROM drover.runs WHERE id = $1`, [id]);
    return Boolean(row) && (!workspaces || workspaces.includes(row.workspace));
  }

  /** How many of `ids` are runs of `workspaces` (what a workspace-limited key's live list may hear of). */
  async visibleRuns(ids: readonly string[], workspaces: readonly string[]): Promise<number> {
    const [row] = await this.sql.query(`SELECT count(*)::int AS n FROM drover.runs WHERE id = ANY ($1::uuid[]) AND workspace = ANY ($2::text[])`, [ids, workspaces]);
    return row.n;
  }

  /** The events of one step (and the run's resumes, which start new rounds of attempts), oldest first, at most `limit`. */
  stepEvents(runId: string, stepId: string, limit = 2000): Promise<AuditEventView[]> {
    return readStepAudit(this.sql, runId, stepId, limit);
  }

  /** Runs by id (id, status, creation time), for the schedules page; missing ids were deleted. */
  async runsById(ids: string[]): Promise<Map<string, { id: string; status: string; createdAt: string }>> {
    if (ids.length === 0) return new Map();
    const rows = await this.sql.query(`SELECT id, status, created_at FROM drover.runs WHERE id = ANY ($1::uuid[])`, [ids]);
    return new Map(rows.map((r) => [r.id as string, { id: r.id as string, status: r.status as string, createdAt: new Date(r.created_at).toISOString() }]));
  }

  /** Every registered version of every workflow, newest registration first within a name. */
  async workflowVersions(): Promise<Array<{ name: string; version: string; registeredAt: Date; definition: ResolvedWorkflow; inputSchema: Record<string, unknown> | null }>> {
    const rows = await this.sql.query(`
      SELECT name, version, registered_at, definition, input_schema FROM drover.workflows ORDER BY name, registered_at DESC LIMIT 2000`);
    return rows.map((r) => ({
      name: r.name, version: r.version, registeredAt: r.registered_at, definition: r.definition, inputSchema: r.input_schema ?? null,
    }));
  }

  /** Workers (active first) with their running steps, counted from the unfinished-steps index. */
  async workers(): Promise<WorkerRow[]> {
    const rows = await this.sql.query(`
      SELECT w.*, COALESCE(a.n, 0)::int AS active_steps
        FROM drover.workers w
        LEFT JOIN (SELECT worker_id, count(*) AS n FROM drover.steps
                    WHERE finished_at IS NULL AND status = 'running' GROUP BY worker_id) a ON a.worker_id = w.id
       ORDER BY (w.status = 'active') DESC, w.started_at DESC LIMIT 500`);
    return rows.map((r) => ({ ...toWorkerView(r), activeSteps: r.active_steps }));
  }

  /** Steps that succeeded and failed (for good) per minute over the last hour (60 buckets, oldest first). */
  async finishedPerMinute(): Promise<MinuteBucket[]> {
    const [{ since }] = await this.sql.query(`SELECT date_trunc('minute', now()) - interval '59 minutes' AS since`);
    const start = new Date(since);
    const buckets: MinuteBucket[] = [];
    for (let i = 0; i < 60; i++) buckets.push({ minute: new Date(start.getTime() + i * 60_000), succeeded: 0, failed: 0 });
    for (const r of await stepOutcomesPerMinute(this.sql, start)) {
      const i = Math.round((r.minute.getTime() - start.getTime()) / 60_000);
      if (i >= 0 && i < 60) buckets[i] = { minute: buckets[i].minute, succeeded: r.succeeded, failed: r.failed };
    }
    return buckets;
  }
}

/**
 * The WHERE clauses of the list's filters. A status filter on an open status
 * adds `finished_at IS NULL` and one on a final status `finished_at IS NOT
 * NULL`, so the planner can read the partial index of that set. `workspaces`
 * (a key's limit) keeps only their runs: with another workspace asked for, none.
 */
function filters(q: RunsPageQuery, withStatus: boolean, offset = 0, workspaces: readonly string[] | null = null): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, ...values: unknown[]) => {
    let text = clause;
    for (const v of values) {
      params.push(v);
      text = text.replace('?', `$${offset + params.length}`);
    }
    where.push(text);
  };
  if (withStatus && q.status) {
    add('status = ?', q.status);
    where.push(q.status === 'pending' || q.status === 'running' ? 'finished_at IS NULL' : 'finished_at IS NOT NULL');
  }
  if (q.workflow) add('workflow = ?', q.workflow);
  if (q.workspace) add('workspace = ?', q.workspace);
  if (workspaces) add('workspace = ANY(?::text[])', [...workspaces]);
  if (q.since) add(`created_at >= now() - make_interval(secs => ?::double precision)`, SINCE_CHOICES[q.since] / 1000);
  if (q.q) {
    if (isUuid(q.q)) add('(id = ?::uuid OR idempotency_key = ?)', q.q.toLowerCase(), q.q);
    else add('idempotency_key = ?', q.q);
  }
  return { where, params };
}
