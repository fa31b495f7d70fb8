import * as fs from 'node:fs';
import * as path from 'node:path';
import express, { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import type { Drover } from '../drover';
import { DroverError } from '../errors';
import { isTransientError } from '../infra/retry';
import { stepQueueNames } from '../http/bull-board';
import { methodNotAllowed } from '../http/errors';
import { requireAccess, ROUTE_ACCESS } from '../http/access';
import { principalOf } from '../http/auth';
import { silentLogger, type Logger } from '../telemetry/logger';
import { errorPage } from './layout';
import { eventsSchema, parseQuery, runPageSchema, runsPageSchema } from './params';
import { queuesPage, QUEUE_STATES, type QueueRow } from './pages/queues';
import { workersPage, workflowsPage } from './pages/registry';
import { runPage } from './pages/run-page';
import { runsListPage } from './pages/runs-list';
import { schedulesPage } from './pages/schedules';
import { bullBoardJobPath } from './pages/step-panel';
import type { RunChangeFeed } from './run-changes';

/**
 * The folder of the dashboard's CSS and JS, found by walking up from this
 * file to the package root (the folder whose `src/dashboard/assets` holds
 * them), so it is the same folder whether this file runs from `src/` (tests)
 * or `dist/src/` (after tsc, which copies no CSS).
 */
export function assetsDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'src', 'dashboard', 'assets');
    if (fs.existsSync(path.join(candidate, 'app.css'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the dashboard assets (src/dashboard/assets) above ${__dirname}`);
    dir = parent;
  }
}

/** Serves `/assets/*` (no auth: the sign-in page needs the stylesheet too); an unknown file is a 404. */
export function dashboardAssets(): Router {
  const router = Router();
  router.use(express.static(assetsDir(), { index: false, maxAge: '5m', redirect: false }));
  router.use((req, res) => {
    res.status(404).type('text/plain').send(`no asset ${req.path}`);
  });
  return router;
}

/** Options of the dashboard router. */
export interface DashboardOptions {
  drover: Drover;
  /** Who may see the pages: runs before every page and the event stream (the API key check, or the session check). */
  authenticate: RequestHandler;
  /** The one LISTEN connection of this process, shared by every event stream. */
  feed: RunChangeFeed;
  /** Comment lines sent on idle event streams so proxies keep them open. Default 15 000 ms. */
  heartbeatMs?: number;
  /** Default silent. */
  logger?: Logger;
}

type Page = (req: Request, res: Response) => Promise<string | undefined>;

/** Sends the HTML a page renders; `undefined` from the page means "no such thing" (404 page). */
const html = (page: Page): RequestHandler => async (req, res, next) => {
  try {
    const body = await page(req, res);
    if (res.headersSent) return;
    res.setHeader('Cache-Control', 'no-store');
    if (body === undefined) res.status(404).type('html').send(errorPage(404, 'Not found', `Nothing is at ${req.path}.`));
    else res.type('html').send(body);
  } catch (error) {
    next(error);
  }
};

/**
 * The runs dashboard's pages (CONTRACT.md section 6) and its event stream,
 * each behind `options.authenticate`; other paths fall through. Mount
 * `dashboardAssets()` separately (without auth).
 */
export function dashboardRouter(options: DashboardOptions): Router {
  const { drover, feed } = options;
  const logger = options.logger ?? silentLogger;
  const queries = drover.dashboardQueries;
  const router = Router({ strict: false, caseSensitive: true });

  // The scope of each page is in ROUTE_ACCESS.dashboard (src/http/access.ts); refusals are HTML pages.
  const refusePage = (res: Response, message: string) => {
    res.status(403).type('html').setHeader('Cache-Control', 'no-store');
    res.send(errorPage(403, 'Forbidden', message));
  };
  const access = new Map(ROUTE_ACCESS.dashboard.map((rule) => [rule.path as string, requireAccess(rule, refusePage)]));
  const page = (path: string, handler: RequestHandler) => {
    const check = access.get(path);
    if (!check) throw new Error(`dashboard page ${path} has no entry in ROUTE_ACCESS.dashboard`);
    router.route(path).get(options.authenticate, check, handler).all(options.authenticate, methodNotAllowed(['GET']));
  };

  // A key limited to workspaces sees their runs only (pages showing every workspace are refused by ROUTE_ACCESS).
  const workspacesOf = (res: Response) => principalOf(res)?.workspaces ?? null;

  page('/', html(async (req, res) => {
    const query = parseQuery(runsPageSchema, req.query);
    const workspaces = workspacesOf(res);
    const [page, counts, workflows] = await Promise.all([
      queries.listRuns(query, 25, workspaces), queries.statusCounts(query, workspaces), drover.listWorkflows().then((list) => list.map((w) => w.name)),
    ]);
    return runsListPage({ query, page, counts, workflows });
  }));

  page('/runs/:id', html(async (req, res) => {
    const query = parseQuery(runPageSchema, req.query);
    const data = await queries.runPage(req.params.id as string, workspacesOf(res));
    if (!data) return undefined;
    const selected = data.steps.find((s) => s.name === query.step) ?? data.elements.get(String(query.step ?? '').replace(/\[\d+\]$/, ''))?.find((s) => s.name === query.step);
    const [stepEvents, stepLogs] = selected
      ? await Promise.all([queries.stepEvents(data.run.id, selected.id), drover.getStepLogs(data.run.id, selected.name, { limit: 1000 })])
      : [[], undefined];
    return runPage({ data, selected: query.step, stepEvents, stepLogs, bullName: (q) => drover.queues.bullName(q), jobPath: bullBoardJobPath });
  }));

  page('/workflows', html(async () => workflowsPage(await queries.workflowVersions())));
  page('/workers', html(async () => workersPage(await queries.workers(), new Date())));
  page('/schedules', html(async (_req, res) => {
    const schedules = await drover.listSchedules({ workspaces: workspacesOf(res) });
    const runs = await queries.runsById(schedules.flatMap((s) => s.recentRunIds.slice(0, 5)));
    const principal = principalOf(res);
    // The buttons call the admin-only API; other keys see why they have none.
    return schedulesPage(schedules, runs, !principal || (principal.scope === 'admin' && !principal.workspaces));
  }));
  page('/queues', html(async () => {
    const names = await stepQueueNames(drover);
    const rows = await Promise.all(names.map(async (queue): Promise<QueueRow> => {
      const bullName = drover.queues.bullName(queue);
      try {
        const counts = await drover.queues.jobCounts(queue, QUEUE_STATES);
        return { queue, bullName, counts: Object.fromEntries(counts.map((c) => [c.state, c.count])) };
      } catch (error) {
        return { queue, bullName, counts: {}, error: `counts unavailable: ${(error as Error).message}` };
      }
    }));
    return queuesPage(rows, await queries.finishedPerMinute(), drover.queues.kind);
  }));

  page('/events', async (req, res, next) => {
    let runId: string | undefined;
    const workspaces = workspacesOf(res);
    try {
      runId = parseQuery(eventsSchema, req.query).run;
      // A run outside the key's workspaces is not found, as on its page.
      if (runId && workspaces && !(await queries.runVisible(runId, workspaces))) {
        res.status(404).type('text/plain').send('no such run');
        return;
      }
    } catch (error) {
      next(error);
      return;
    }
    let open = false;
    const unsubscribe = feed.subscribe((change) => {
      if (!open) return;
      if ('all' in change) res.write('event: change\ndata: *\n\n');
      else if (runId) {
        if (change.runIds.includes(runId)) res.write(`event: change\ndata: ${runId}\n\n`);
      } else if (!workspaces) res.write(`event: change\ndata: ${change.runIds.length}\n\n`);
      else {
        // A workspace-limited key hears only of its workspaces' runs (not even that others changed).
        queries.visibleRuns(change.runIds, workspaces).then((n) => {
          if (n > 0 && open && !gone && !res.writableEnded) res.write(`event: change\ndata: ${n}\n\n`);
        }, (err) => {
          // Not known: the page refreshes, as after any change it could not read.
          logger.warn({ err }, 'could not read which changed runs a live list may see');
          if (open && !gone && !res.writableEnded) res.write('event: change\ndata: *\n\n');
        });
      }
    }, () => { res.end(); });
    let gone = false;
    req.once('close', () => {
      gone = true;
      unsubscribe();
    });
    // Opened only once changes will be told: the page refreshes itself on open, so nothing falls between.
    await feed.whenReady();
    if (gone) return;
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.write('retry: 1000\n\n');
    open = true;
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), options.heartbeatMs ?? 15_000);
    heartbeat.unref();
    const cleanup = () => {
      clearInterval(heartbeat);
      unsubscribe();
    };
    req.once('close', cleanup);
    res.once('error', cleanup);
  });

  // Only errors of the routes above arrive here: other paths fall through to the app's 404.
  router.use(pageErrors(logger));
  return router;
}

/**
 * Errors of a page as HTML pages: a malformed query is a 400 page, a missing
 * thing a 404 page, an unreachable store a 503 page; a real fault is logged
 * and answers a 500 page without details.
 */
function pageErrors(logger: Logger): ErrorRequestHandler {
  return (error, req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const send = (status: number, title: string, message: string) => {
      res.status(status).type('html').setHeader('Cache-Control', 'no-store');
      res.send(errorPage(status, title, message));
    };
    if (error instanceof DroverError && error.code === 'invalid_request') send(400, 'Bad request', error.message);
    else if (error instanceof DroverError && error.code === 'not_found') send(404, 'Not found', error.message);
    else if (error instanceof URIError || (error as { status?: number })?.status === 400) send(400, 'Bad request', 'the URL is not correctly encoded');
    else if (isTransientError(error)) {
      res.setHeader('Retry-After', '1');
      send(503, 'Unavailable', 'Postgres or the queue store is unavailable; try again in a moment.');
    } else {
      logger.error({ err: error, path: req.path }, 'dashboard page failed');
      send(500, 'Server error', 'The page could not be rendered; the server log says why.');
    }
  };
}
