import express, { type Express, type RequestHandler } from 'express';
import type { Drover } from '../drover';
import { MAX_JSON_DEPTH } from '../json';
import { silentLogger, type Logger } from '../telemetry/logger';
import { JOB_STATES } from '../telemetry/metrics';
import { apiRoutes } from './api-routes';
import { authenticate } from './auth';
import { createBullBoardRouter, type BullBoard } from './bull-board';
import { errorHandler, methodNotAllowed, unknownRoute } from './errors';

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
  /** Default silent. */
  logger?: Logger;
}

/** The express app and what it holds open. */
export interface DroverApp {
  app: Express;
  bullBoard: BullBoard;
  /** Stops timers and metric sources (the Drover stays open: the caller owns it). */
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
  if (jsonDepthExceeds(buf, MAX_JSON_DEPTH)) throw Object.assign(new Error(`JSON nests deeper than ${MAX_JSON_DEPTH} levels`), { type: 'json.too.deep' });
};

/** One debug line per request (method, path, status, duration); never headers or bodies. */
function requestLogger(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      if (!logger.isLevelEnabled('debug')) return;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    next();
  };
}

/**
 * The HTTP surface of CONTRACT.md section 3: the JSON API under `/api`, Bull
 * Board under `/admin/queues`, `/` (redirects to Bull Board until the runs
 * dashboard lands), and the unauthenticated `/health`, `/ready` and `/metrics`.
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

  app.route('/health')
    .get((_req, res) => {
      res.json({ status: 'ok' });
    })
    .all(methodNotAllowed(['GET']));

  app.route('/ready')
    .get(async (_req, res) => {
      const checks = await drover.checkReady();
      const ok = checks.postgres && checks.queue;
      res.status(ok ? 200 : 503).json({ status: ok ? 'ok' : 'unavailable', checks });
    })
    .all(methodNotAllowed(['GET']));

  app.route('/metrics')
    .get(async (_req, res) => {
      const text = await drover.metrics.registry.metrics();
      res.setHeader('Content-Type', drover.metrics.registry.contentType);
      res.send(text);
    })
    .all(methodNotAllowed(['GET']));

  const requireKey = authenticate(auth ? drover.apiKeys : null);
  const bullBoard = createBullBoardRouter({ drover, logger, refreshIntervalMs: options.queueRefreshIntervalMs });
  const removeQueueSource = drover.metrics.addQueueJobSource(async () => {
    // Labelled with the BullMQ queue name, as the engine's step counters are.
    const counts = await Promise.all(bullBoard.queues().map((queue) => drover.queues.jobCounts(queue, JOB_STATES)));
    return counts.flat();
  });

  app.use('/api', requireKey, express.json({ limit: bodyLimit, strict: true, verify: verifyDepth }), apiRoutes(drover));
  app.use('/admin', requireKey);
  app.use('/admin/queues', bullBoard.router);
  app.route('/')
    .get(requireKey, (_req, res) => {
      res.redirect(302, '/admin/queues');
    })
    .all(requireKey, methodNotAllowed(['GET']));

  app.use(unknownRoute);
  app.use(errorHandler(logger));

  return {
    app,
    bullBoard,
    close() {
      bullBoard.close();
      removeQueueSource();
    },
  };
}
