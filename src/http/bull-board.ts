import * as fs from 'node:fs';
import * as path from 'node:path';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type RequestHandler } from 'express';
import type { BullBoardMode } from '../config';
import type { Drover } from '../drover';
import { writePrivateTempFile } from '../infra/private-temp';
import { isTransientError } from '../infra/retry';
import { isUuid } from '../json';
import { runPathOf } from '../queue/dispatcher';
import { BULL_BOARD_PATH } from '../queue/queue-inspector';
import type { Logger } from '../telemetry/logger';
import { bullBoardActions } from './bull-board-actions';

/** Options of the Bull Board mount. */
export interface BullBoardOptions {
  drover: Drover;
  /** URL path Bull Board is served under. Default `/admin/queues`. */
  basePath?: string;
  /** How often the queue list is read again from the workflow registry. Default 10 000 ms. */
  refreshIntervalMs?: number;
  /** `readonly` (default): no buttons, every action refused; `readwrite`: actions as `bullBoardActions` says. */
  mode?: BullBoardMode;
  /** Parses JSON bodies of Bull Board's API (drover's, with its size and depth bounds). Default: none (Bull Board's own). */
  jsonBody?: RequestHandler;
  logger: Logger;
}

/** Bull Board over every step queue, kept in step with the registered workflows. */
export interface BullBoard {
  router: Router;
  /** The drover queue names shown now. */
  queues(): string[];
  /** Reads the workflow registry and shows any new queue. */
  refresh(): Promise<string[]>;
  /** Stops the periodic refresh. */
  close(): void;
}

/** The step queues of the registered workflows, plus `default`, sorted. */
export async function stepQueueNames(drover: Drover): Promise<string[]> {
  const workflows = await drover.listWorkflows();
  return [...new Set(['default', ...workflows.flatMap((w) => w.steps.map((s) => s.queue))])].sort();
}

/** The link from a job's page in Bull Board back to its run in drover's dashboard. */
function runLink(job: { data?: unknown }): { displayText: string; href: string } {
  let data = job.data;
  if (typeof data === 'string') {
    try {
      data = JSON.parse(data);
    } catch {
      data = undefined;
    }
  }
  const runId = (data as { runId?: unknown } | undefined)?.runId;
  // Built from a checked run id, never from a path in the data (which anyone with queue access can write).
  return typeof runId === 'string' && isUuid(runId)
    ? { displayText: `run ${runId.slice(0, 8)} in drover`, href: runPathOf(runId) }
    : (undefined as unknown as { displayText: string; href: string });
}

/**
 * Mounts Bull Board over the BullMQ queues of either backend, read-only
 * unless `mode` is `readwrite` (then its actions keep drover's meaning, see
 * `bullBoardActions`). Its errors are logged and answered with a generic
 * message. New workflows registered by workers bring new queues; a timer
 * picks them up.
 */
export function createBullBoardRouter(options: BullBoardOptions): BullBoard {
  const { drover, logger } = options;
  const mode = options.mode ?? 'readonly';
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(options.basePath ?? BULL_BOARD_PATH);
  let shown: string[] = ['default'];
  const adapters = (names: string[]) => names.map((name) => new BullMQAdapter(drover.queues.boardQueue(name), {
    readOnlyMode: mode === 'readonly',
    description: `drover queue "${name}": jobs are named <workflow>/<step>`,
    externalJobUrl: runLink,
  }));
  const board = createBullBoard({ queues: adapters(shown), serverAdapter, options: { uiConfig: { boardTitle: 'drover' } } });
  serverAdapter.setViewsPath(localFontsView());
  // Bull Board's own handler answers with the raw error text (Postgres', JavaScript's) and logs nothing.
  type ErrorAnswer = ReturnType<Parameters<ExpressAdapter['setErrorHandler']>[0]>;
  serverAdapter.setErrorHandler((error: Error): ErrorAnswer => {
    if (isTransientError(error)) {
      logger.warn({ err: error }, 'Bull Board request failed: the queue store is unavailable');
      return { status: 503, body: { error: { code: 'unavailable', message: 'the queue store is unavailable; try again' } } } as unknown as ErrorAnswer;
    }
    logger.error({ err: error }, 'Bull Board request failed');
    return { status: 500, body: { error: { code: 'internal_error', message: 'internal server error' } } };
  });

  let closed = false;
  const refresh = async (): Promise<string[]> => {
    if (closed) return shown;
    const names = await stepQueueNames(drover);
    if (names.join('\n') !== shown.join('\n')) {
      board.replaceQueues(adapters(names));
      shown = names;
    }
    return shown;
  };
  // Read-through: a run of a version this process had not seen shows its queues at once.
  const stopListening = drover.workflows.onNewQueues((queues) => {
    if (closed || queues.every((q) => shown.includes(q))) return;
    const names = [...new Set([...shown, ...queues])].sort();
    board.replaceQueues(adapters(names));
    shown = names;
  });
  const timer = setInterval(() => {
    refresh().catch((err) => logger.warn({ err }, 'could not refresh the Bull Board queue list'));
  }, options.refreshIntervalMs ?? 10_000);
  timer.unref();

  const router = Router();
  if (options.jsonBody) router.use('/api', options.jsonBody);
  router.use(bullBoardActions({ drover, mode, queues: () => shown, logger }));
  const boardApp = serverAdapter.getRouter() as Router & { disable?: (setting: string) => void };
  // Bull Board is an express app of its own, which would add X-Powered-By again.
  boardApp.disable?.('x-powered-by');
  router.use(boardApp);

  return {
    router,
    queues: () => shown,
    refresh,
    close() {
      closed = true;
      stopListening();
      clearInterval(timer);
    },
  };
}

/**
 * Bull Board's page template links Google Fonts' stylesheet; drover's pages load
 * nothing from another host (CONTRACT §6), so its template is served from a copy
 * without that link (the page falls back to the system's sans-serif and monospace
 * fonts). The copy is made once per process in a private directory of its own
 * (writePrivateTempFile), since EJS runs the template as code: a
 * predictable shared path would let another local user plant one. It goes when
 * the process exits.
 */
let templateFile: { file: string } | undefined;
export function localFontsView(): string {
  const uiDist = path.join(path.dirname(require.resolve('@bull-board/ui/package.json')), 'dist');
  const template = fs.readFileSync(path.join(uiDist, 'index.ejs'), 'utf8');
  const local = template.replace(/<link[^>]*https:\/\/fonts\.(googleapis|gstatic)\.com[^>]*>\s*/g, '');
  if (local === template) return uiDist;
  if (templateFile && fs.existsSync(templateFile.file)) return path.dirname(templateFile.file);
  const written = writePrivateTempFile('drover-bull-board-', 'index.ejs', local);
  process.once('exit', written.remove);
  templateFile = written;
  return path.dirname(written.file);
}
