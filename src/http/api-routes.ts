import { Router, type RequestHandler } from 'express';
import type { Drover } from '../drover';
import { invalidRequest } from '../errors';
import type { CreateRunRequest, ListRunsQuery } from '../types';
import type { MapElementQuery } from '../waits/map-elements';
import { applyAccess, ROUTE_ACCESS, workspacesOf } from './access';
import { actorOf } from './auth';
import { methodNotAllowed } from './errors';
import { batchBodySchema, objectBodySchema, parseOr400, signalBodySchema } from './schemas';

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
 * schemas (here and in the run service); handlers only translate. The scope
 * each route needs is in `ROUTE_ACCESS.api`; a key's workspace limit is handed
 * to every Drover method that reads or changes runs.
 */
export function apiRoutes(drover: Drover): Router {
  const router = Router({ strict: false, caseSensitive: true });
  applyAccess(router, ROUTE_ACCESS.api);

  router.route('/runs')
    .post(requireJsonBody, async (req, res) => {
      // Checked only: the parsed copy is not used, so the run service sees exactly what was sent.
      parseOr400(objectBodySchema, req.body, 'body');
      const { run, created } = await drover.submitRun(req.body as CreateRunRequest, { actor: actorOf(res), workspaces: workspacesOf(res) });
      res.status(created ? 201 : 200).json(run);
    })
    .get(async (req, res) => {
      res.json(await drover.listRuns(req.query as ListRunsQuery, { workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router.route('/runs/batch')
    .post(requireJsonBody, async (req, res) => {
      const body = parseOr400(batchBodySchema, req.body, 'body');
      res.json(await drover.createRuns(body.runs as CreateRunRequest[], { actor: actorOf(res), workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id')
    .get(async (req, res) => {
      res.json(await drover.getRun(req.params.id, { workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['GET']));

  router.route('/runs/:id/audit')
    .get(async (req, res) => {
      res.json(await drover.getAudit(req.params.id, { workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['GET']));

  router.route('/runs/:id/cancel')
    .post(async (req, res) => {
      res.json(await drover.cancelRun(req.params.id, { actor: actorOf(res), workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id/retry')
    .post(async (req, res) => {
      res.json(await drover.retryRun(req.params.id, { actor: actorOf(res), workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id/rerun')
    .post(async (req, res) => {
      res.status(201).json(await drover.rerunRun(req.params.id, { actor: actorOf(res), workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id/signals/:signal')
    .post(requireJsonBody, async (req, res) => {
      const body = parseOr400(signalBodySchema, req.body, 'body');
      res.status(201).json(await drover.signal(req.params.id, req.params.signal, body.payload, { actor: actorOf(res), workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id/steps/:name/elements')
    .get(async (req, res) => {
      res.json(await drover.listMapElements(req.params.id, req.params.name, req.query as MapElementQuery, { workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['GET']));

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
