import type { Request, RequestHandler, Response } from 'express';
import { parse as parseCookies } from 'cookie';
import type { ApiKeyStore } from '../auth/api-keys';
import type { Scope } from '../auth/scopes';
import type { SessionStore } from '../auth/sessions';
import { tooManyFailuresMessage, type AuthFailureLimiter } from './auth-failures';
import { sendError } from './errors';

/**
 * The `WWW-Authenticate` challenges of a 401, one header each: Basic first,
 * because Chromium reads only the first challenge of a line (FACTS.md) and
 * Basic is the one a browser can answer.
 */
export const AUTH_CHALLENGES: readonly string[] = ['Basic realm="drover"', 'Bearer realm="drover"'];

/** The session cookie's name. */
export const SESSION_COOKIE = 'drover_session';

/** How a request proved who it is (`none`: auth is off). */
export type AuthMethod = 'bearer' | 'basic' | 'session' | 'none';

/** Who made the request, set by `authenticate` as `res.locals.principal`. */
export interface Principal {
  /** The API key's id (null with auth off). */
  keyId: string | null;
  /** The API key's name (`anonymous` with auth off). */
  name: string;
  via: AuthMethod;
  /** The key's scope (`admin` with auth off). */
  scope: Scope;
  /** The workspaces the key is limited to; null: every workspace (also with auth off). */
  workspaces: string[] | null;
}

/** The stores `authenticate` checks credentials against; null turns auth off. */
export interface AuthStores {
  keys: ApiKeyStore;
  sessions: SessionStore;
}

/** The stores of a Drover when `auth` is on, else null (what `authenticate` and `pageAuth` take). */
export function authStoresOf(drover: { apiKeys: ApiKeyStore; sessions: SessionStore }, auth: boolean): AuthStores | null {
  return auth ? { keys: drover.apiKeys, sessions: drover.sessions } : null;
}

/** The audit actor of the request, set by `authenticate`. */
export function actorOf(res: Response): string {
  return (res.locals.actor as string | undefined) ?? 'api:anonymous';
}

/** The principal of the request, set by `authenticate` (undefined before it ran). */
export function principalOf(res: Response): Principal | undefined {
  return res.locals.principal as Principal | undefined;
}

/** The key presented in an `Authorization` header, and how. */
export interface PresentedKey {
  key: string;
  via: 'bearer' | 'basic';
}

/** The key presented: `Authorization: Bearer <key>`, or HTTP Basic with the key as password. */
export function presentedKey(header: string | undefined): PresentedKey | undefined {
  if (!header) return undefined;
  const match = /^(\S+)\s+(\S+)\s*$/.exec(header);
  if (!match) return undefined;
  const scheme = match[1].toLowerCase();
  if (scheme === 'bearer') return { key: match[2], via: 'bearer' };
  if (scheme === 'basic') {
    const decoded = Buffer.from(match[2], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? { key: decoded.slice(colon + 1), via: 'basic' } : undefined;
  }
  return undefined;
}

/** The session token in the request's cookies, if any. */
export function sessionToken(req: Request): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  try {
    return parseCookies(header)[SESSION_COOKIE] || undefined;
  } catch {
    return undefined;
  }
}

/** Whether a request is a browser asking for a page: GET or HEAD whose `Accept` prefers HTML to JSON. */
export function wantsPage(req: Request): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  return req.accepts(['application/json', 'text/html']) === 'text/html';
}

/** Where a page request without credentials is sent: `/login?next=<the path asked for>`. */
export function loginRedirect(req: Request): string {
  const next = req.originalUrl;
  return next === '/' || next === '' ? '/login' : `/login?next=${encodeURIComponent(next)}`;
}

/** Options of `authenticate`. */
export interface AuthenticateOptions {
  /** Send browser page requests without a valid credential to `/login` (303) instead of a 401. Default false. */
  redirectPages?: boolean;
  /** Counts refused credentials per address and answers 429 past its limit. Default none. */
  failures?: AuthFailureLimiter;
}

/** The 401 message for a refused key (expired keys say so, with when). */
export function keyRefusal(check: { ok: false; reason: 'invalid' } | { ok: false; reason: 'expired'; expiresAt: string }): string {
  return check.reason === 'expired'
    ? `the API key expired at ${check.expiresAt}: make a new one with drover keys create`
    : 'the API key is not valid or was revoked';
}

/** Resolves the request's credential: the `Authorization` header first, else the session cookie. */
async function identify(req: Request, stores: AuthStores): Promise<{ principal?: Principal; failure: string; presented: boolean }> {
  const header = req.headers.authorization;
  if (header) {
    const presented = presentedKey(header);
    if (!presented) return { failure: 'the Authorization header is not "Bearer <key>" or Basic with the key as password', presented: true };
    const check = await stores.keys.verify(presented.key);
    if (check.ok) {
      const { id, name, scope, workspaces } = check.identity;
      return { principal: { keyId: id, name, via: presented.via, scope, workspaces }, failure: '', presented: true };
    }
    return { failure: keyRefusal(check), presented: true };
  }
  const token = sessionToken(req);
  if (token) {
    const session = await stores.sessions.verify(token);
    if (session) {
      const { keyId, name, scope, workspaces } = session;
      return { principal: { keyId, name, via: 'session', scope, workspaces }, failure: '', presented: true };
    }
    return { failure: 'the session has ended (signed out, expired, or its key was revoked or has expired): sign in again at /login', presented: true };
  }
  return { failure: 'an API key is required (Authorization: Bearer <key>, or sign in at /login)', presented: false };
}

/**
 * The one authentication middleware of `/api`, `/admin` and the pages.
 * Accepts `Authorization: Bearer <key>`, HTTP Basic with the key as password,
 * or the session cookie of `/login`. Sets `res.locals.principal` and the
 * audit actor `res.locals.actor = 'api:<key name>'`. Without a valid
 * credential: a browser page request is redirected to `/login` when
 * `redirectPages` is set; anything else gets 401 with one `WWW-Authenticate`
 * header per scheme. `stores` null means auth is off: everything is served as
 * `api:anonymous`. The key itself is never logged nor kept.
 */
export function authenticate(stores: AuthStores | null, options: AuthenticateOptions = {}): RequestHandler {
  return async (req, res, next) => {
    if (!stores) {
      res.locals.actor = 'api:anonymous';
      res.locals.principal = { keyId: null, name: 'anonymous', via: 'none', scope: 'admin', workspaces: null } satisfies Principal;
      next();
      return;
    }
    try {
      const wait = await options.failures?.blockedFor(req.ip);
      if (wait) {
        res.setHeader('Retry-After', String(wait));
        sendError(res, 429, 'too_many_requests', tooManyFailuresMessage(wait));
        return;
      }
      const { principal, failure, presented } = await identify(req, stores);
      if (principal) {
        res.locals.principal = principal;
        res.locals.actor = `api:${principal.name}`;
        next();
        return;
      }
      if (presented) await options.failures?.recordFailure(req.ip);
      if (options.redirectPages && wantsPage(req)) {
        res.redirect(303, loginRedirect(req));
        return;
      }
      res.setHeader('WWW-Authenticate', [...AUTH_CHALLENGES]);
      sendError(res, 401, 'unauthorized', failure);
    } catch (error) {
      next(error);
    }
  };
}

/**
 * Authentication for browser pages (the runs dashboard mounts its pages
 * behind it): a signed-in session, Bearer or Basic; a page request without
 * one is redirected to `/login?next=<path>`, other requests get 401.
 */
export function pageAuth(stores: AuthStores | null, failures?: AuthFailureLimiter): RequestHandler {
  return authenticate(stores, { redirectPages: true, failures });
}
