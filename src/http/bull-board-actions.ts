import { Router, type RequestHandler, type Response } from 'express';
import type { QueueEvent, QueueEventType } from '../audit/audit';
import type { BullBoardMode } from '../config';
import type { Drover } from '../drover';
import { DroverError } from '../errors';
import { checkJob } from '../steps/job-check';
import type { Logger } from '../telemetry/logger';
import { actorOf } from './auth';
import { sendError } from './errors';

/** Methods that change nothing; every other method on Bull Board is an action. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The 403 message of an action in read-only mode. */
export const READ_ONLY_MESSAGE = 'Bull Board is read-only; set DROVER_BULL_BOARD=readwrite to allow its actions (each is then audited with the key\'s name)';

/** Options of `bullBoardActions`. */
export interface BullBoardActionsOptions {
  drover: Drover;
  /** `readonly` refuses every action; `readwrite` maps each to drover's meaning, or refuses it. */
  mode: BullBoardMode;
  /** The drover queues Bull Board shows now. */
  queues: () => string[];
  logger: Logger;
}

/**
 * What drover makes of Bull Board's mutating API (`@bull-board/api`'s
 * routes), mounted in front of it under the same base path. Bull Board's own
 * `readOnlyMode` only hides buttons and answers 405 on queue routes; here
 * every action is decided by drover:
 *
 * - read-only: every non-GET request is refused with 403 `forbidden`.
 * - read-write:
 *   - Retry of a job → drover's resume of the job's run when that run is
 *     `failed` (audited `run.retried` by the key), 409 `invalid_state`
 *     otherwise. BullMQ's own retry would turn the job green while the run
 *     stays failed.
 *   - Pause and resume (one queue or all), empty, clean (a status or one
 *     job) and obliterate → done by Bull Board and audited (`queue.*`,
 *     `job.removed`) with the key's name. None can lose a step: Postgres
 *     holds every step, and the reconciler enqueues again any queued step
 *     whose job is gone.
 *   - Refused with 403 and a message saying what to do instead: promote (one
 *     or all: a delayed job is a run's or step's `delayMs` or a retry's
 *     backoff, which Postgres times; skipping it would break what the run
 *     asked for, and the worker would put a backoff back anyway), retry-all,
 *     add a job, update job data, change a job's delay or priority, global
 *     concurrency and rate limits (drover has its own flow control), job
 *     schedulers (drover has its own schedules), and anything not listed.
 */
export function bullBoardActions(options: BullBoardActionsOptions): Router {
  const router = Router({ caseSensitive: true });
  if (options.mode === 'readonly') {
    router.use((req, res, next) => {
      if (SAFE_METHODS.has(req.method)) next();
      else sendError(res, 403, 'forbidden', READ_ONLY_MESSAGE);
    });
    return router;
  }
  const { drover, logger } = options;
  const refuse = (message: string): RequestHandler => (_req, res) => sendError(res, 403, 'forbidden', message);
  const bullNames = () => options.queues().map((q) => drover.queues.bullName(q));

  /** Lets Bull Board do it; audits it once Bull Board answered with success. */
  const audited = (events: (params: Record<string, string>, res: Response) => Promise<QueueEvent[]> | QueueEvent[]): RequestHandler =>
    (req, res, next) => {
      const params = { ...req.params } as Record<string, string>;
      // Read before Bull Board acts (a removed job cannot tell its run afterwards).
      const pending = Promise.resolve().then(() => events(params, res));
      pending.catch(() => undefined);
      res.once('finish', () => {
        if (res.statusCode >= 300) return;
        pending
          .then((list) => drover.recordQueueEvents(list, { actor: actorOf(res) }))
          .catch((err) => logger.error({ err, method: req.method, path: req.originalUrl.split('?')[0] }, 'could not audit a Bull Board action'));
      });
      pending.then(() => next('router'), next);
    };
  const queueEvent = (type: QueueEventType, extra: (p: Record<string, string>) => Record<string, unknown> = () => ({})) =>
    audited((p) => [{ type, runId: null, stepId: null, data: { queue: p.queueName, ...extra(p) } }]);
  const allQueuesEvent = (type: QueueEventType) => audited(() => [{ type, runId: null, stepId: null, data: { queues: bullNames() } }]);

  // In the order of @bull-board/api's routes (a literal segment before a parameter).
  router.put('/api/queues/pause', allQueuesEvent('queue.paused'));
  router.put('/api/queues/resume', allQueuesEvent('queue.resumed'));
  router.post('/api/queues/:queueName/add', refuse('adding jobs through Bull Board is not allowed: create a run (POST /api/runs)'));
  router.put('/api/queues/:queueName/retry/:queueStatus', refuse('retry-all is not allowed: resume each failed run (POST /api/runs/:id/retry, or Retry on its job)'));
  router.put('/api/queues/:queueName/promote', refuse('promoting delayed jobs is not allowed: their delays (a run\'s or step\'s delayMs, a retry\'s backoff) are kept by drover'));
  router.put('/api/queues/:queueName/clean/:queueStatus', queueEvent('queue.cleaned', (p) => ({ status: p.queueStatus })));
  router.put('/api/queues/:queueName/pause', queueEvent('queue.paused'));
  router.put('/api/queues/:queueName/resume', queueEvent('queue.resumed'));
  router.put('/api/queues/:queueName/empty', queueEvent('queue.emptied'));
  router.put('/api/queues/:queueName/obliterate', queueEvent('queue.obliterated'));
  router.put('/api/queues/:queueName/:jobId/retry', retryJob(drover, options.queues));
  router.put('/api/queues/:queueName/:jobId/clean', audited(async (p) => [await jobRemoved(drover, options.queues(), p.queueName, p.jobId)]));
  router.put('/api/queues/:queueName/:jobId/promote', refuse('promoting a delayed job is not allowed: its delay (a run\'s or step\'s delayMs, a retry\'s backoff) is kept by drover'));
  router.patch('/api/queues/:queueName/:jobId/update-data', refuse('job data cannot be changed: a step job names its step, and workers check it against Postgres'));
  router.use((req, res, next) => {
    if (SAFE_METHODS.has(req.method)) next();
    else sendError(res, 403, 'forbidden', `${req.method} ${req.baseUrl}${req.path} is not allowed through Bull Board: drover keeps delays, priorities, concurrency, rate limits and schedules itself`);
  });
  return router;
}

/** A job's step, when its id and data check out and the step is of the run the data names. */
async function stepOfJob(drover: Drover, shown: string[], bullQueue: string, jobId: string): Promise<{ runId: string; stepId: string } | string> {
  const queue = drover.queues.droverName(bullQueue);
  if (!queue || !shown.includes(queue)) return `no queue ${bullQueue}`;
  const job = await drover.queues.boardQueue(queue).getJob(jobId);
  if (!job) return `no job ${jobId} in queue ${bullQueue}`;
  const checked = checkJob(job);
  if (typeof checked === 'string') return `job ${jobId} is not a drover step job (${checked.replace(/_/g, ' ')})`;
  const run = await drover.getRun(checked.runId).catch((error) => {
    if (error instanceof DroverError && error.code === 'not_found') return null;
    throw error;
  });
  if (!run || !run.steps.some((s) => s.id === checked.stepId)) return `job ${jobId} names a step that is not in run ${checked.runId}`;
  return { runId: checked.runId, stepId: checked.stepId };
}

/** `job.removed`, with the run and step when the job is a genuine step job. */
async function jobRemoved(drover: Drover, shown: string[], bullQueue: string, jobId: string): Promise<QueueEvent> {
  const step = await stepOfJob(drover, shown, bullQueue, jobId);
  return typeof step === 'string'
    ? { type: 'job.removed', runId: null, stepId: null, data: { queue: bullQueue, jobId } }
    : { type: 'job.removed', runId: step.runId, stepId: step.stepId, data: { queue: bullQueue, jobId } };
}

/** Retry of a job: resumes its run through drover when the run failed. */
function retryJob(drover: Drover, queues: () => string[]): RequestHandler {
  return async (req, res) => {
    const { queueName, jobId } = req.params as Record<string, string>;
    const step = await stepOfJob(drover, queues(), queueName, jobId);
    if (typeof step === 'string') {
      sendError(res, step.startsWith('no ') ? 404 : 409, step.startsWith('no ') ? 'not_found' : 'invalid_state', step);
      return;
    }
    const run = await drover.runs.getRunSummary(step.runId);
    if (run.status !== 'failed') {
      sendError(res, 409, 'invalid_state', `run ${run.id} is ${run.status}: Retry resumes a failed run only (a cancelled one resumes with POST /api/runs/${run.id}/retry)`);
      return;
    }
    const resumed = await drover.retryRun(run.id, { actor: actorOf(res) });
    res.status(200).json({ run: { id: resumed.id, status: resumed.status } });
  };
}
