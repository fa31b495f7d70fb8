import { forbidden } from '../errors';
import type { CreateRunRequest } from '../types';

/** The workspace a run request names when it names none. */
export const DEFAULT_WORKSPACE = 'default';

/** Whether a workspace limit (null: none) lets its holder see `workspace`. */
export function workspaceAllowed(workspaces: readonly string[] | null | undefined, workspace: string): boolean {
  return !workspaces || workspaces.includes(workspace);
}

/**
 * A run request as a key limited to `workspaces` may make it: without a
 * `workspace`, a key of one workspace creates in it (a key of several in
 * `default`, when it is one of them); a workspace outside the limit is
 * `forbidden`. Anything not shaped like a request is returned as it is, for
 * the run service to refuse. `where` prefixes the message (`runs[3]`).
 */
export function limitCreate<T extends CreateRunRequest>(request: T, workspaces: readonly string[] | null | undefined, where = ''): T {
  if (!workspaces || typeof request !== 'object' || request === null || Array.isArray(request)) return request;
  const named = (request as { workspace?: unknown }).workspace;
  const at = where ? `${where}: ` : '';
  if (named === undefined) {
    if (workspaces.length === 1) return { ...request, workspace: workspaces[0] };
    if (workspaces.includes(DEFAULT_WORKSPACE)) return request;
    throw forbidden(`${at}this key is limited to workspaces ${workspaces.join(', ')}: name one of them in "workspace"`);
  }
  if (typeof named === 'string' && !workspaces.includes(named)) {
    throw forbidden(`${at}this key cannot create runs in workspace "${named}" (it is limited to ${workspaces.join(', ')})`);
  }
  return request;
}
