import type { RequestHandler, Response } from 'express';
import type { ApiKeyStore } from '../auth/api-keys';
import { sendError } from './errors';

/** The `WWW-Authenticate` challenge of a 401. */
export const AUTH_CHALLENGE = 'Bearer realm="drover", Basic realm="drover"';

/** The audit actor of the request, set by `authenticate`. */
export function actorOf(res: Response): string {
  return (res.locals.actor as string | undefined) ?? 'api:anonymous';
}

/** The key presented: `Authorization: Bearer <key>`, or HTTP Basic with the key as password. */
export function presentedKey(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^(\S+)\s+(\S+)\s*$/.exec(header);
  if (!match) return undefined;
  const scheme = match[1].toLowerCase();
  if (scheme === 'bearer') return match[2];
  if (scheme === 'basic') {
    const decoded = Buffer.from(match[2], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : undefined;
  }
  return undefined;
}

/**
 * Requires a valid API key (unless `keys` is null: auth off). Sets
 * `res.locals.actor` to `api:<key name>`; answers 401 with a challenge
 * otherwise. The key itself is never logged nor kept.
 */
export function authenticate(keys: ApiKeyStore | null): RequestHandler {
  return async (req, res, next) => {
    if (!keys) {
      res.locals.actor = 'api:anonymous';
      next();
      return;
    }
    const key = presentedKey(req.headers.authorization);
    const identity = key ? await keys.verify(key) : undefined;
    if (!identity) {
      res.setHeader('WWW-Authenticate', AUTH_CHALLENGE);
      sendError(res, 401, 'unauthorized', key ? 'the API key is not valid or was revoked' : 'an API key is required (Authorization: Bearer <key>)');
      return;
    }
    res.locals.actor = `api:${identity.name}`;
    next();
  };
}
