import express, { Router, type Request, type Response } from 'express';
import { serialize } from 'cookie';
import escapeHtml from 'escape-html';
import type { Logger } from '../telemetry/logger';
import { keyRefusal, SESSION_COOKIE, sessionToken, type AuthStores } from './auth';
import { tooManyFailuresMessage, type AuthFailureLimiter } from './auth-failures';
import { methodNotAllowed } from './errors';

/** Options of the sign-in routes. */
export interface LoginOptions {
  /** The stores keys and sessions are checked against; null: auth is off (the routes send the browser on). */
  stores: AuthStores | null;
  /** Mark the session cookie `Secure` (HTTPS only). Default false. */
  cookieSecure?: boolean;
  /** Counts refused keys per address and answers 429 past its limit. Default none. */
  failures?: AuthFailureLimiter;
  logger: Logger;
}

/** Longest `next` path kept. */
const MAX_NEXT_LENGTH = 2048;

/**
 * Where to go after signing in: `next` when it is a path of this site
 * (`/…`, never `//…` or `/\…`, which browsers read as another host), else `/`.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length === 0 || next.length > MAX_NEXT_LENGTH) return '/';
  if (!next.startsWith('/') || next.startsWith('//') || next.includes('\\')) return '/';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(next)) return '/';
  try {
    const url = new URL(next, 'http://drover.invalid');
    if (url.host !== 'drover.invalid') return '/';
  } catch {
    return '/';
  }
  return next;
}

/** The sign-in page: one password field for the API key, posted (never in a URL). */
export function loginPage(options: { next?: string; message?: string } = {}): string {
  const next = safeNext(options.next);
  const message = options.message
    ? `\n      <p class="login-error" role="alert">${escapeHtml(options.message)}</p>`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>Sign in · drover</title>
  <link rel="stylesheet" href="/assets/app.css">
</head>
<body class="login">
  <main class="login-box">
    <h1>drover</h1>
    <form method="post" action="/login" class="login-form">${message}
      <label for="key">API key</label>
      <input id="key" name="key" type="password" autocomplete="current-password" required autofocus
             spellcheck="false" placeholder="drv_…">
      <input type="hidden" name="next" value="${escapeHtml(next)}">
      <button type="submit">Sign in</button>
    </form>
    <p class="login-hint">Make a key with <code>npx drover keys create --name NAME</code>; <code>drover start</code> prints one on its first start.</p>
  </main>
</body>
</html>
`;
}

function sendPage(res: Response, status: number, html: string): void {
  res.status(status);
  res.setHeader('Cache-Control', 'no-store');
  res.type('html').send(html);
}

/**
 * `GET /login` (the form), `POST /login` (form fields `key` and optional
 * `next`: a valid key gets the session cookie and a 303 to `next`; an invalid
 * one a 401 with the form and a message, the key never echoed) and
 * `POST /logout` (ends the session, clears the cookie, 303 to `/login`).
 */
export function loginRoutes(options: LoginOptions): Router {
  const { stores, logger } = options;
  const router = Router({ strict: false, caseSensitive: true });
  const cookie = (value: string, maxAgeSeconds: number) => serialize(SESSION_COOKIE, value, {
    httpOnly: true, sameSite: 'strict', path: '/', secure: options.cookieSecure ?? false, maxAge: maxAgeSeconds,
  });
  const form = express.urlencoded({ extended: false, limit: '8kb', parameterLimit: 10 });

  router.route('/login')
    .get((req: Request, res: Response) => {
      if (!stores) {
        res.redirect(303, safeNext(req.query.next));
        return;
      }
      sendPage(res, 200, loginPage({ next: typeof req.query.next === 'string' ? req.query.next : undefined }));
    })
    .post(form, async (req: Request, res: Response) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const next = safeNext(body.next);
      if (!stores) {
        res.redirect(303, next);
        return;
      }
      const key = typeof body.key === 'string' ? body.key.trim() : '';
      if (!req.is('application/x-www-form-urlencoded') || key === '') {
        sendPage(res, 400, loginPage({ next, message: 'Enter an API key.' }));
        return;
      }
      const wait = await options.failures?.blockedFor(req.ip);
      if (wait) {
        res.setHeader('Retry-After', String(wait));
        sendPage(res, 429, loginPage({ next, message: `Too many failed sign-ins from this address: try again in ${wait} s.` }));
        logger.warn({ ip: req.ip }, tooManyFailuresMessage(wait));
        return;
      }
      const check = await stores.keys.verify(key);
      if (!check.ok) {
        await options.failures?.recordFailure(req.ip);
        logger.info({ ip: req.ip }, `sign-in refused: ${keyRefusal(check)}`);
        sendPage(res, 401, loginPage({ next, message: check.reason === 'expired' ? 'That API key has expired.' : 'That API key is not valid or was revoked.' }));
        return;
      }
      const identity = check.identity;
      const session = await stores.sessions.create(identity.id);
      logger.info({ keyName: identity.name, session: session.id }, 'signed in');
      res.setHeader('Set-Cookie', cookie(session.token, Math.floor(stores.sessions.options.maxMs / 1000)));
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(303, next);
    })
    .all(methodNotAllowed(['GET', 'POST']));

  router.route('/logout')
    .post(async (req: Request, res: Response) => {
      if (stores && (await stores.sessions.delete(sessionToken(req)))) logger.info('signed out');
      res.setHeader('Set-Cookie', cookie('', 0));
      res.setHeader('Cache-Control', 'no-store');
      res.redirect(303, '/login');
    })
    .all(methodNotAllowed(['POST']));

  return router;
}
