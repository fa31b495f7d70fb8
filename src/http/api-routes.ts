import { Router, type RequestHandler } from 'express';
import type { Drover } from '../drover';
import { invalidRequest } from '../errors';
import type { CreateRunRequest, ListRunsQuery } from '../types';
import { actorOf } from './auth';
import { methodNotAllowed } from './errors';
import { batchBodySchema, objectBodySchema, parseOr400 } from './schemas';

/** A JSON body was required but none (or not JSON) came. */
const requireJsonBody: RequestHandler = (req, _res, next) => {
  if (req.body === undefined) {
    next(invalidRequest('body: expected a JSON object (Content-Type: application/json)'));
    return;
  }
  next();
};

/**
 * The `/api` routes of CONTRACT.md section 3. Validation lives in the zod
 * schemas (here and in the run service); handlers only translate.
 */
export function apiRoutes(drover: Drover): Router {
  const router = Router({ strict: false, caseSensitive: true });

  router.route('/runs')
    .post(requireJsonBody, async (req, res) => {
      // Checked only: the parsed copy is not used, so the run service sees exactly what was sent.
      parseOr400(objectBodySchema, req.body, 'body');
      const { run, created } = await drover.submitRun(req.body as CreateRunRequest, { actor: actorOf(res) });
      res.status(created ? 201 : 200).json(run);
    })
    .get(async (req, res) => {
      res.json(await drover.listRuns(req.query as ListRunsQuery));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router.route('/runs/batch')
    .post(requireJsonBody, async (req, res) => {
      const body = parseOr400(batchBodySchema, req.body, 'body');
      res.json(await drover.createRuns(body.runs as CreateRunRequest[], { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id')
    .get(async (req, res) => {
      res.json(await drover.getRun(req.params.id));
    })
    .all(methodNotAllowed(['GET']));

  router.route('/runs/:id/audit')
    .get(async (req, res) => {
      res.json(await drover.getAudit(req.params.id));
    })
    .all(methodNotAllowed(['GET']));

  router.route('/runs/:id/cancel')
    .post(async (req, res) => {
      res.json(await drover.cancelRun(req.params.id, { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id/retry')
    .post(async (req, res) => {
      res.json(await drover.retryRun(req.params.id, { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/workflows')
    .get(async (_req, res) => {
      res.json({ items: await drover.listWorkflows() });
    })
    .all(methodNotAllowed(['GET']));

  router.route('/workers')
    .get(async (_req, res) => {
      res.json({ items: await drover.listWorkers() });
    })
    .all(methodNotAllowed(['GET']));

  return router;
}
