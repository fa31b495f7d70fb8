import type { RequestHandler, Response, Router } from 'express';
import { scopeAllows, type Scope } from '../auth/scopes';
import { principalOf } from './auth';
import { sendError } from './errors';

/** What one route needs of the key that calls it. */
export interface RouteAccess {
  method: 'GET' | 'POST' | 'DELETE' | 'ALL' | 'SAFE' | 'UNSAFE';
  /** Express path, relative to the mount. */
  path: string;
  /** The least scope allowed. */
  scope: Scope;
  /** What the route does, for the 403 message ("this key's scope (read) cannot <action>"). */
  action: string;
  /** Refused to a key limited to workspaces: the route shows every workspace (Bull Board, `/metrics`). */
  everyWorkspace?: boolean;
}

/**
 * Every route behind a key and the scope it needs: the one table of who may
 * do what (SECURITY.md copies it). `/api` routes are relative to `/api`; a
 * route of a workspace-limited key also sees only its workspaces' runs (the
 * Drover methods take the key's workspaces). `SAFE` is GET, HEAD and OPTIONS;
 * `UNSAFE` every other method.
 */
export const ROUTE_ACCESS = {
  api: [
    { method: 'GET', path: '/runs', scope: 'read', action: 'list runs' },
    { method: 'POST', path: '/runs', scope: 'producer', action: 'create runs' },
    { method: 'POST', path: '/runs/batch', scope: 'producer', action: 'create runs' },
    { method: 'GET', path: '/runs/:id', scope: 'read', action: 'read runs' },
    { method: 'GET', path: '/runs/:id/audit', scope: 'read', action: 'read audit trails' },
    { method: 'POST', path: '/runs/:id/cancel', scope: 'producer', action: 'cancel runs' },
    { method: 'POST', path: '/runs/:id/retry', scope: 'producer', action: 'resume runs' },
    { method: 'POST', path: '/runs/:id/rerun', scope: 'producer', action: 'rerun runs' },
    { method: 'POST', path: '/runs/:id/signals/:signal', scope: 'producer', action: 'send signals to runs' },
    { method: 'GET', path: '/runs/:id/steps/:name/elements', scope: 'read', action: 'list map elements' },
    { method: 'GET', path: '/workflows', scope: 'read', action: 'list workflows' },
    { method: 'GET', path: '/workers', scope: 'read', action: 'list workers' },
  ],
  /**
   * Schedules and step logs (`src/http/schedule-routes.ts`, relative to `/api`). A schedule makes
   * runs on its own until deleted, so changing one needs `admin`, of every workspace.
   */
  schedules: [
    { method: 'GET', path: '/schedules', scope: 'read', action: 'list schedules' },
    { method: 'POST', path: '/schedules', scope: 'admin', action: 'create schedules', everyWorkspace: true },
    { method: 'GET', path: '/schedules/:name', scope: 'read', action: 'read schedules' },
    { method: 'DELETE', path: '/schedules/:name', scope: 'admin', action: 'delete schedules', everyWorkspace: true },
    { method: 'POST', path: '/schedules/:name/pause', scope: 'admin', action: 'pause schedules', everyWorkspace: true },
    { method: 'POST', path: '/schedules/:name/resume', scope: 'admin', action: 'resume schedules', everyWorkspace: true },
    { method: 'GET', path: '/runs/:id/steps/:name/logs', scope: 'read', action: 'read step logs' },
  ],
  /** Bull Board, under `/admin/queues`: it shows every workspace's jobs, so a workspace-limited key may not open it. */
  bullBoard: [
    { method: 'SAFE', path: '/', scope: 'read', action: 'open Bull Board', everyWorkspace: true },
    { method: 'UNSAFE', path: '/', scope: 'admin', action: 'change queues or jobs in Bull Board', everyWorkspace: true },
  ],
  /** `/metrics` with `DROVER_METRICS_AUTH=on`: its counts cover every workspace. */
  metrics: [
    { method: 'GET', path: '/metrics', scope: 'read', action: 'read metrics', everyWorkspace: true },
  ],
  /**
   * The runs dashboard's pages (`src/dashboard/router.ts`): every key reads them, a
   * workspace-limited one sees only its runs; the queues page shows every workspace.
   * Its actions are the `/api` routes above.
   */
  dashboard: [
    { method: 'GET', path: '/', scope: 'read', action: 'open the dashboard' },
    { method: 'GET', path: '/runs/:id', scope: 'read', action: 'open a run' },
    { method: 'GET', path: '/workflows', scope: 'read', action: 'list workflows' },
    { method: 'GET', path: '/workers', scope: 'read', action: 'list workers' },
    { method: 'GET', path: '/schedules', scope: 'read', action: 'list schedules' },
    { method: 'GET', path: '/queues', scope: 'read', action: 'open the queues page', everyWorkspace: true },
    { method: 'GET', path: '/events', scope: 'read', action: 'follow run changes' },
  ],
} as const satisfies Record<string, readonly RouteAccess[]>;

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

function methodMatches(rule: RouteAccess['method'], method: string): boolean {
  if (rule === 'ALL') return true;
  if (rule === 'SAFE') return SAFE.has(method);
  if (rule === 'UNSAFE') return !SAFE.has(method);
  return rule === method || (rule === 'GET' && method === 'HEAD');
}

/**
 * Refuses (by default with 403 `forbidden` JSON; `refuse` answers otherwise, e.g. an HTML page) a request whose key's scope is below `access.scope`,
 * or that is limited to workspaces on a route showing every workspace. Runs
 * after `authenticate` (with auth off the principal is `admin` of every workspace).
 */
export function requireAccess(access: RouteAccess, refuse: (res: Response, message: string) => void = (res, message) => sendError(res, 403, 'forbidden', message)): RequestHandler {
  return function accessCheck(req, res, next) {
    if (!methodMatches(access.method, req.method)) {
      next();
      return;
    }
    const principal = principalOf(res);
    const scope = principal?.scope ?? 'read';
    if (!scopeAllows(scope, access.scope)) {
      refuse(res, `this key's scope (${scope}) cannot ${access.action}: that needs a key of scope ${access.scope} or above`);
      return;
    }
    if (access.everyWorkspace && principal?.workspaces) {
      refuse(res, `this key is limited to workspaces (${principal.workspaces.join(', ')}) and cannot ${access.action}, which shows every workspace`);
      return;
    }
    next();
  };
}

/** Puts each rule of `rules` in front of `router`'s routes (call before adding them). */
export function applyAccess(router: Router, rules: readonly RouteAccess[]): void {
  for (const rule of rules) {
    if (rule.method === 'GET') router.get(rule.path, requireAccess(rule));
    else if (rule.method === 'POST') router.post(rule.path, requireAccess(rule));
    else if (rule.method === 'DELETE') router.delete(rule.path, requireAccess(rule));
    else if (rule.path === '/') router.use(requireAccess(rule));
    else router.all(rule.path, requireAccess(rule));
  }
}

/** The workspace limit of the request's key (null: every workspace), for the Drover methods. */
export function workspacesOf(res: Response): readonly string[] | null {
  return principalOf(res)?.workspaces ?? null;
}
