import { RUN_STATUSES } from '../../states';
import type { RunView } from '../../types';
import { renderPage, Status, Time, duration } from '../layout';
import { SINCE_CHOICES, type RunsPageQuery } from '../params';
import type { RunsListPage, StatusCounts } from '../queries';

/** What the runs list shows. */
export interface RunsListData {
  query: RunsPageQuery;
  page: RunsListPage;
  counts: StatusCounts;
  workflows: string[];
}

const SINCE_LABELS: Record<keyof typeof SINCE_CHOICES, string> = {
  '15m': 'last 15 minutes', '1h': 'last hour', '6h': 'last 6 hours', '24h': 'last 24 hours', '7d': 'last 7 days',
};

/** The list's URL with some filters changed (the cursor dropped unless given). */
function listHref(query: RunsPageQuery, change: Partial<RunsPageQuery>): string {
  const merged: Record<string, string | undefined> = { ...query, cursor: undefined, ...change };
  const params = new URLSearchParams();
  for (const key of ['status', 'workflow', 'workspace', 'since', 'q', 'cursor']) {
    const v = merged[key];
    if (v) params.set(key, v);
  }
  const text = params.toString();
  return text ? `/?${text}` : '/';
}

function Filters({ query, workflows }: { query: RunsPageQuery; workflows: string[] }) {
  const names = query.workflow && !workflows.includes(query.workflow) ? [query.workflow, ...workflows] : workflows;
  return (
    <form class="filters" method="get" action="/" role="search" aria-label="Filter runs">
      <div class="field"><label for="f-search">Search</label>
        <input id="f-search" type="search" name="q" value={query.q ?? ''} placeholder="run id or idempotency key" size={30} />
      </div>
      <div class="field"><label for="f-status">Status</label>
        <select id="f-status" name="status">
          <option value="">any</option>
          {RUN_STATUSES.map((s) => <option key={s} value={s} selected={query.status === s}>{s}</option>)}
        </select>
      </div>
      <div class="field"><label for="f-workflow">Workflow</label>
        <select id="f-workflow" name="workflow">
          <option value="">any</option>
          {names.map((w) => <option key={w} value={w} selected={query.workflow === w}>{w}</option>)}
        </select>
      </div>
      <div class="field"><label for="f-workspace">Workspace</label>
        <input id="f-workspace" type="text" name="workspace" value={query.workspace ?? ''} placeholder="any" size={12} />
      </div>
      <div class="field"><label for="f-created">Created</label>
        <select id="f-created" name="since">
          <option value="">any time</option>
          {Object.entries(SINCE_LABELS).map(([v, label]) => <option key={v} value={v} selected={query.since === v}>{label}</option>)}
        </select>
      </div>
      <button type="submit">Apply filters</button>
      <a class="button-link" href="/">Clear</a>
    </form>
  );
}

function Counts({ query, counts }: { query: RunsPageQuery; counts: StatusCounts }) {
  const whole = counts.counted < counts.window;
  const filtered = Boolean(query.workflow || query.workspace || query.q);
  return (
    <section class="counts" aria-labelledby="counts-title">
      <h2 id="counts-title" class="small-title">
        {`Runs by status${filtered ? ' (matching the filters)' : ''}: ${whole
          ? `all ${counts.counted.toLocaleString('en')} runs${query.since ? ' of the period' : ''}`
          : `among the newest ${counts.window.toLocaleString('en')} runs${query.since ? ' of the period' : ''}`}`}
      </h2>
      <ul>
        {RUN_STATUSES.map((s) => (
          <li key={s}>
            <a href={listHref(query, { status: query.status === s ? undefined : s })} class={`count status-${s}`}
              aria-current={query.status === s ? 'true' : undefined} data-count-status={s}>
              <span class="count-n">{(counts.counts[s] ?? 0).toLocaleString('en')}</span> <span class="count-label">{s}</span>
            </a>
          </li>
        ))}
      </ul>
    </section>
  );
}

function RunRow({ run }: { run: RunView }) {
  return (
    <tr data-run-id={run.id} data-status={run.status}>
      <td><a href={`/runs/${run.id}`} class="mono">{run.id.slice(0, 8)}</a></td>
      <td>{run.workflow}</td>
      <td><Status status={run.status} /></td>
      <td>{run.workspace}</td>
      <td class="mono small">{run.idempotencyKey ?? ''}</td>
      <td><Time at={run.createdAt} /></td>
      <td>{duration(run.startedAt ?? run.createdAt, run.finishedAt)}</td>
    </tr>
  );
}

/** The runs list (`/`): filters, counts per status, one keyset page of runs, newest first. */
export function runsListPage(data: RunsListData): string {
  const { query, page } = data;
  const filtered = Boolean(query.status || query.workflow || query.workspace || query.since || query.q);
  return renderPage({ title: 'Runs', section: 'runs', live: '/events' }, (
    <>
      <h1>Runs</h1>
      <Filters query={query} workflows={data.workflows} />
      <div id="live">
        <Counts query={query} counts={data.counts} />
        {page.items.length === 0
          ? <p class="empty">{filtered ? 'No run matches these filters.' : 'No runs yet. Start one with POST /api/runs or drover runs create.'}</p>
          : (
            <table class="runs">
              <caption class="visually-hidden">Runs, newest first</caption>
              <thead>
                <tr><th scope="col">Run</th><th scope="col">Workflow</th><th scope="col">Status</th><th scope="col">Workspace</th>
                  <th scope="col">Idempotency key</th><th scope="col">Created (UTC)</th><th scope="col">Took</th></tr>
              </thead>
              <tbody>{page.items.map((run) => <RunRow key={run.id} run={run} />)}</tbody>
            </table>
          )}
        <nav class="pager" aria-label="Pages">
          {query.cursor ? <a href={listHref(query, {})}>Newest runs</a> : null}
          {page.nextCursor ? <a href={listHref(query, { cursor: page.nextCursor })} rel="next">Older runs</a> : null}
        </nav>
      </div>
    </>
  ));
}
