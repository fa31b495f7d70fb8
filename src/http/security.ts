import type { Request, RequestHandler } from 'express';
import helmet from 'helmet';
import { principalOf } from './auth';
import { sendError } from './errors';

/**
 * The Content-Security-Policy of drover's own pages: everything from this
 * origin only, no inline script or style, never framed.
 */
export const PAGE_CSP: Readonly<Record<string, string[]>> = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'connect-src': ["'self'"],
  'font-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'none'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
};

/**
 * Bull Board's policy: its scripts are files of this origin (its config is a
 * JSON data block, which CSP does not treat as script), but its page carries
 * inline styles and a `<base href>` (its Google Fonts link is taken out of its
 * template: `bull-board.ts`, so nothing comes from another host). Scripts stay
 * `'self'` only; it is never framed either.
 */
export const BULL_BOARD_CSP: Readonly<Record<string, string[]>> = {
  ...PAGE_CSP,
  'style-src': ["'self'", "'unsafe-inline'"],
  'base-uri': ["'self'"],
};

/** Where Bull Board is mounted (its pages get `BULL_BOARD_CSP`). */
const BULL_BOARD_PATH = '/admin/queues';

/**
 * Security headers on every response, by helmet: no `X-Powered-By`,
 * `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin`,
 * `X-Frame-Options: DENY`, and a CSP with `frame-ancestors 'none'` (the page
 * policy, or Bull Board's under `/admin/queues`). HSTS only when the cookie is
 * `Secure` (drover is then served over HTTPS).
 */
export function securityHeaders(options: { hsts: boolean }): RequestHandler {
  const make = (directives: Record<string, string[]>) => helmet({
    contentSecurityPolicy: { useDefaults: false, directives },
    referrerPolicy: { policy: 'same-origin' },
    frameguard: { action: 'deny' },
    strictTransportSecurity: options.hsts,
    crossOriginEmbedderPolicy: false,
  });
  const pages = make(PAGE_CSP);
  const board = make(BULL_BOARD_CSP);
  return (req, res, next) => {
    const inBoard = req.path === BULL_BOARD_PATH || req.path.startsWith(`${BULL_BOARD_PATH}/`);
    (inBoard ? board : pages)(req, res, next);
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The host name of a `Host` header or URL host, lower case and without its port (`[::1]` keeps its brackets). */
export function hostName(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const h = host.trim().toLowerCase();
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(:\d{1,5})?$/.exec(h);
  return match ? match[1] : undefined;
}

/** The host names a drover with auth off serves. */
export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** Whether a listen address (`HOST`) is a loopback one. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Refuses state-changing requests (any method but GET, HEAD, OPTIONS) that a
 * browser sent from another site: `Sec-Fetch-Site` other than `same-origin` or
 * `none`, or else an `Origin` whose host is not the request's `Host` (nor one
 * of `allowedHosts`). Requests without either header (curl, scripts) pass.
 */
export function refuseCrossSite(allowedHosts: readonly string[] = []): RequestHandler {
  return (req, res, next) => {
    if (SAFE_METHODS.has(req.method)) {
      next();
      return;
    }
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      sendError(res, 403, 'forbidden', 'cross-site request refused');
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !sameHost(origin, req.headers.host, allowedHosts)) {
      sendError(res, 403, 'forbidden', 'cross-site request refused');
      return;
    }
    next();
  };
}

function sameHost(origin: string, host: string | undefined, allowedHosts: readonly string[]): boolean {
  let originHost: string;
  try {
    originHost = new URL(origin).host.toLowerCase();
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
  if (host !== undefined && originHost === host.trim().toLowerCase()) return true;
  const name = hostName(originHost);
  return name !== undefined && allowedHosts.includes(name);
}

/**
 * With auth off, serves only requests whose `Host` is loopback (`localhost`,
 * `127.0.0.1`, `[::1]`, any port) or one of `allowedHosts`: a web page that
 * points its own host name at 127.0.0.1 (DNS rebinding) gets 421.
 */
export function requireLoopbackHost(allowedHosts: readonly string[] = []): RequestHandler {
  const served = new Set([...LOOPBACK_HOSTS, ...allowedHosts]);
  return (req, res, next) => {
    const name = hostName(req.headers.host);
    if (name !== undefined && served.has(name)) {
      next();
      return;
    }
    sendError(res, 421, 'misdirected_request',
      'with DROVER_AUTH=off drover serves only loopback hosts (localhost, 127.0.0.1, [::1]); this request named another Host: add it to DROVER_ALLOWED_HOSTS if a proxy forwards it');
  };
}

const JSON_TYPE = /^application\/json\s*(;|$)/i;

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Mutating `/api` requests a browser could send (authenticated by the session
 * cookie or Basic, or with auth off) must say `Content-Type: application/json`,
 * which no cross-site form can; an empty body with that type means `{}`.
 * Bearer requests (scripts, curl) are served exactly as before.
 */
export const requireJsonFromBrowsers: RequestHandler = (req, res, next) => {
  if (SAFE_METHODS.has(req.method) || principalOf(res)?.via === 'bearer') {
    next();
    return;
  }
  if (!JSON_TYPE.test(req.headers['content-type'] ?? '')) {
    sendError(res, 415, 'unsupported_media_type',
      `${req.method} ${req.originalUrl.split('?')[0]} needs Content-Type: application/json (send {} when there is nothing to say)`);
    return;
  }
  if (!hasBody(req)) req.body = {};
  next();
};
