import { isUtf8 } from 'node:buffer';
import express, { type Express, type RequestHandler } from 'express';
import type { BullBoardMode } from '../config';
import type { Drover } from '../drover';
import { MAX_JSON_DEPTH } from '../json';
import { silentLogger, type Logger } from '../telemetry/logger';
import { JOB_STATES } from '../telemetry/metrics';
import { applyAccess, requireAccess, ROUTE_ACCESS } from './access';
import { apiRoutes } from './api-routes';
import { scheduleRoutes } from './schedule-routes';
import { authenticate, authStoresOf, pageAuth } from './auth';
import { AuthFailureLimiter } from './auth-failures';
import { loginRoutes } from './login';
import { refuseCrossSite, requireJsonFromBrowsers, requireLoopbackHost, securityHeaders } from './security';
import { createBullBoardRouter, type BullBoard } from './bull-board';
import { dashboardAssets, dashboardRouter } from '../dashboard/router';
import { RunChangeFeed } from '../dashboard/run-changes';
import { errorHandler, methodNotAllowed, unknownRoute } from './errors';
import { traceContext } from './trace-context';

/** Options of `createApp`. */
export interface AppOptions {
  drover: Drover;
  /** Require API keys. Default true; false is for local development only. */
  auth?: boolean;
  /** Largest request body in bytes. Default the larger of 2 MiB and the run input limit plus 64 KiB. */
  bodyLimitBytes?: number;
  /** Largest run input the drover accepts, used for the default body limit. Default 1 MiB. */
  maxInputBytes?: number;
  /** How often Bull Board re-reads the queue list. Default 10 000 ms. */
  queueRefreshIntervalMs?: number;
  /** Mark the session cookie `Secure` and send HSTS (drover is served over HTTPS). Default false. */
  cookieSecure?: boolean;
  /** Host names served besides loopback ones when auth is off (a proxy's), also accepted as `Origin`. Default none. */
  allowedHosts?: string[];
  /** Failed authentications allowed per client address per minute before 429s; 0 turns the limit off. Default 100. */
  authFailuresPerMinute?: number;
  /** How long a `/ready` answer is reused, so a flood of probes costs one check per period. Default 2 000 ms. */
  readyCacheMs?: number;
  /** What Bull Board may do (`DROVER_BULL_BOARD`). Default `readonly`. */
  bullBoard?: BullBoardMode;
  /** `/metrics` needs a key (any scope, no workspace limit) when auth is on (`DROVER_METRICS_AUTH`). Default false. */
  metricsAuth?: boolean;
  /** How long the queue gauges' reading of the queue store is reused, so a flood of scrapes costs one read per period. Default 5 000 ms. */
  queueGaugeCacheMs?: number;
  /** Called each time the queue gauges actually read the queue store (instrumentation; tests count reads with it). */
  onQueueGaugeRead?: (gauge: 'jobs' | 'paused') => void;
  /** Default silent. */
  logger?: Logger;
  /** Heartbeat interval of the dashboard's event streams. Default 15 000 ms. */
  eventHeartbeatMs?: number;
}

/** The express app and what it holds open. */
export interface DroverApp {
  app: Express;
  bullBoard: BullBoard;
  /** The dashboard's one LISTEN connection, shared by every browser's event stream. */
  runChanges: RunChangeFeed;
  /** Stops timers, metric sources and the LISTEN connection (the Drover stays open: the caller owns it). */
  close(): void;
}

const MiB = 1024 * 1024;

/**
 * Whether a JSON text nests objects and arrays deeper than `max`. Checked on
 * the raw bytes before parsing, so a pathological body costs one linear scan
 * and never reaches the recursive validators.
 */
export function jsonDepthExceeds(buf: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

const verifyDepth = (_req: unknown, _res: unknown, buf: Buffer) => {
  // body-parser turns what verify throws into an http error keeping our `type`; errorHandler maps it to 400.
  // Invalid UTF-8 would otherwise be decoded into U+FFFD and stored as if the client had sent it.
  if (!isUtf8(buf)) throw Object.assign(new Error('the body is not valid UTF-8'), { type: 'json.invalid.utf8' });
  if (jsonDepthExceeds(buf, MAX_JSON_DEPTH)) throw Object.assign(new Error(`JSON nests deeper than ${MAX_JSON_DEPTH} levels`), { type: 'json.too.deep' });
};

/** The paused ones of `queues` (drover names), or undefined when the queue store does not answer within 2 s. */
async function pausedQueuesOf(drover: Drover, queues: string[]): Promise<string[] | undefined> {
  const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000).unref());
  return Promise.race([drover.queues.pausedQueues(queues).catch(() => undefined), timeout]);
}

/**
 * `read`, shared by every caller for `ms` after each call: concurrent and
 * repeated callers within the period get the same promise (a failed one too,
 * so a queue store that is down is not asked again on every scrape).
 */
export function sharedFor<T>(ms: number, read: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | undefined;
  return () => {
    if (!last || Date.now() - last.at >= ms) {
      const value = read();
      value.catch(() => undefined);
      last = { at: Date.now(), value };
    }
    return last.value;
  };
}

/** One debug line per request (method, whole path, status, duration); never headers or bodies. */
function requestLogger(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      if (!logger.isLevelEnabled('debug')) return;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.debug({ method: req.method, path: req.originalUrl, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    next();
  };
}

/**
 * The HTTP surface of CONTRACT.md section 3: the JSON API under `/api`, Bull
 * Board under `/admin/queues`, the runs dashboard (`/`, `/runs/:id`, …, its
 * assets under `/assets`), sign-in at `/login` and `/logout`, and the
 * unauthenticated `/health`, `/ready` and `/metrics`. Every response carries
 * the security headers; cross-site state changes are refused; with auth off
 * only loopback `Host`s are served.
 */
export function createApp(options: AppOptions): DroverApp {
  const { drover } = options;
  const logger = options.logger ?? silentLogger;
  const auth = options.auth ?? true;
  const bodyLimit = options.bodyLimitBytes ?? Math.max(2 * MiB, (options.maxInputBytes ?? MiB) + 64 * 1024);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(requestLogger(logger));
  if (!auth) app.use(requireLoopbackHost(options.allowedHosts));
  app.use(securityHeaders({ hsts: options.cookieSecure ?? false }));
  app.use(refuseCrossSite(options.allowedHosts));

  app.route('/health')
    .get((_req, res) => {
      res.json({ status: 'ok' });
    })
    .all(methodNotAllowed(['GET']));

  const readyCacheMs = options.readyCacheMs ?? 2000;
  let lastReady: { at: number; checks: Promise<[{ postgres: boolean; queue: boolean }, string[] | undefined]> } | undefined;
  app.route('/ready')
    .get(async (_req, res) => {
      // Unauthenticated: concurrent and repeated probes share one check per period.
      if (!lastReady || Date.now() - lastReady.at >= readyCacheMs) {
        lastReady = { at: Date.now(), checks: Promise.all([drover.checkReady(), pausedQueuesOf(drover, bullBoard.queues())]) };
      }
      const [checks, pausedQueues] = await lastReady.checks;
      const ok = checks.postgres && checks.queue;
      // A paused queue is an operator's choice, not a fault of this process: shown (when there is one), but still ready.
      res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks: { ...checks, ...(pausedQueues?.length ? { pausedQueues } : {}) } });
    })
    .all(methodNotAllowed(['GET']));

  const stores = authStoresOf(drover, auth);
  const failures = new AuthFailureLimiter(options.authFailuresPerMinute ?? 100);
  const requireKey = authenticate(stores, { failures });

  const metricsGuard: RequestHandler[] = options.metricsAuth && stores ? [requireKey, requireAccess(ROUTE_ACCESS.metrics[0])] : [];
  app.route('/metrics')
    .get(...metricsGuard, async (_req, res) => {
      const text = await drover.metrics.registry.metrics();
      res.setHeader('Content-Type', drover.metrics.registry.contentType);
      res.send(text);
    })
    .all(methodNotAllowed(['GET']));

  const requirePage = pageAuth(stores, failures);
  const jsonBody = express.json({ limit: bodyLimit, strict: true, verify: verifyDepth });
  const bullBoard = createBullBoardRouter({
    drover, logger, refreshIntervalMs: options.queueRefreshIntervalMs, mode: options.bullBoard ?? 'readonly', jsonBody,
  });
  // The gauges are read at scrape time from the queue store; /metrics may be open, so one read per period serves every scrape.
  const gaugeCacheMs = options.queueGaugeCacheMs ?? 5000;
  const removeQueueSource = drover.metrics.addQueueJobSource(sharedFor(gaugeCacheMs, async () => {
    options.onQueueGaugeRead?.('jobs');
    // Labelled with the drover queue name, as the engine's step counters are.
    const counts = await Promise.all(bullBoard.queues().map((queue) => drover.queues.jobCounts(queue, JOB_STATES)));
    return counts.flat();
  }));
  const removeFlowSource = drover.metrics.addFlowGaugeSource(sharedFor(gaugeCacheMs, () => drover.flow.gauges()));
  const removePausedSource = drover.metrics.addQueuePausedSource(sharedFor(gaugeCacheMs, async () => {
    options.onQueueGaugeRead?.('paused');
    const queues = bullBoard.queues();
    const paused = new Set(await drover.queues.pausedQueues(queues));
    return queues.map((queue) => ({ queue, paused: paused.has(queue) }));
  }));

  const removeHealthSource = drover.metrics.addHealthSource(sharedFor(gaugeCacheMs, () => drover.readHealth()));

  app.use(loginRoutes({ stores, cookieSecure: options.cookieSecure, failures, logger }));
  app.use('/api', requireKey, requireJsonFromBrowsers, jsonBody, traceContext(drover.tracing), apiRoutes(drover), scheduleRoutes(drover));
  app.use('/admin', requirePage);
  const boardAccess = express.Router();
  applyAccess(boardAccess, ROUTE_ACCESS.bullBoard);
  app.use('/admin/queues', boardAccess, bullBoard.router);
  const runChanges = new RunChangeFeed({ createClient: () => drover.createListenClient(), readChanges: (afterId) => drover.runsChangedSince(afterId), logger });
  app.use('/assets', dashboardAssets());
  // Pages take a session (browsers without one are sent to /login), Bearer or Basic.
  app.use(dashboardRouter({ drover, authenticate: requirePage, feed: runChanges, heartbeatMs: options.eventHeartbeatMs, logger }));

  app.use(unknownRoute);
  app.use(errorHandler(logger));

  return {
    app,
    bullBoard,
    runChanges,
    close() {
      bullBoard.close();
      removeQueueSource();
      removePausedSource();
      removeHealthSource();
      removeFlowSource();
      void runChanges.close();
    },
  };
}
