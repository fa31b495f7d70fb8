import { Router, type RequestHandler } from 'express';
import type { Drover } from '../drover';
import { invalidRequest } from '../errors';
import type { StepLogQuery } from '../steps/step-logs';
import { applyAccess, ROUTE_ACCESS, workspacesOf } from './access';
import { actorOf } from './auth';
import { methodNotAllowed } from './errors';

const requireObjectBody: RequestHandler = (req, _res, next) => {
  if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
    next(invalidRequest('body: expected a JSON object {name, workflow, cron, ...} (Content-Type: application/json)'));
    return;
  }
  next();
};

/**
 * `/api/schedules…` (CONTRACT §8) and `/api/runs/:id/steps/:name/logs` (§9).
 * Reading needs `read` (a workspace-limited key sees its workspaces'
 * schedules); changing schedules needs `admin` of every workspace (a schedule
 * starts runs on its own, forever): see `ROUTE_ACCESS.schedules`.
 */
export function scheduleRoutes(drover: Drover): Router {
  const router = Router({ strict: false, caseSensitive: true });
  applyAccess(router, ROUTE_ACCESS.schedules);

  router.route('/schedules')
    .get(async (_req, res) => {
      res.json({ items: await drover.listSchedules({ workspaces: workspacesOf(res) }) });
    })
    .post(requireObjectBody, async (req, res) => {
      res.status(201).json(await drover.createSchedule(req.body, { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router.route('/schedules/:name')
    .get(async (req, res) => {
      res.json(await drover.getSchedule(req.params.name, { workspaces: workspacesOf(res) }));
    })
    .delete(async (req, res) => {
      res.json(await drover.deleteSchedule(req.params.name, { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['GET', 'DELETE']));

  router.route('/schedules/:name/pause')
    .post(async (req, res) => {
      res.json(await drover.pauseSchedule(req.params.name, { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/schedules/:name/resume')
    .post(async (req, res) => {
      res.json(await drover.resumeSchedule(req.params.name, { actor: actorOf(res) }));
    })
    .all(methodNotAllowed(['POST']));

  router.route('/runs/:id/steps/:name/logs')
    .get(async (req, res) => {
      res.json(await drover.getStepLogs(req.params.id, req.params.name, req.query as StepLogQuery, { workspaces: workspacesOf(res) }));
    })
    .all(methodNotAllowed(['GET']));

  return router;
}
