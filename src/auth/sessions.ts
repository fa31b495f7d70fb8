import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Queryable } from '../db/sql';
import { isoTime } from '../json';
import type { Scope } from './scopes';

/** Lifetimes of browser sessions. */
export interface SessionOptions {
  /** A session unused this long ends. Default 8 h (`DROVER_SESSION_IDLE_MS`). */
  idleMs?: number;
  /** A session ends this long after sign-in, used or not. Default 7 days (`DROVER_SESSION_MAX_MS`). */
  maxMs?: number;
}

/** Default idle lifetime: 8 hours. */
export const DEFAULT_SESSION_IDLE_MS = 8 * 3600_000;
/** Default absolute lifetime: 7 days. */
export const DEFAULT_SESSION_MAX_MS = 7 * 86_400_000;
/** Bytes of randomness in a session token. */
const TOKEN_BYTES = 32;
/** A token as the cookie carries it: 32 bytes, base64url. */
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
// last_seen_at drives idle expiry; writing it on every request would cost a row update per page view.
const LAST_SEEN_RESOLUTION_MS = 60_000;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** A session just made: `token` (the cookie's value) is its only copy. */
export interface CreatedSession {
  id: string;
  token: string;
  /** Absolute expiry (ISO-8601). */
  expiresAt: string;
}

/** Who a valid session belongs to. */
export interface SessionIdentity {
  sessionId: string;
  /** The API key the session was made from. */
  keyId: string;
  /** That key's name (the audit actor is `api:<name>`). */
  name: string;
  /** That key's scope. */
  scope: Scope;
  /** That key's workspaces; null: every workspace. */
  workspaces: string[] | null;
}

/** Resolves session lifetimes, throwing `TypeError` on a value that is not a positive whole number of ms. */
export function resolveSessionOptions(options: SessionOptions = {}): Required<SessionOptions> {
  const idleMs = options.idleMs ?? DEFAULT_SESSION_IDLE_MS;
  const maxMs = options.maxMs ?? DEFAULT_SESSION_MAX_MS;
  for (const [name, value] of [['idleMs', idleMs], ['maxMs', maxMs]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`sessions: ${name} must be a positive whole number of milliseconds (got ${value})`);
  }
  return { idleMs, maxMs };
}

/**
 * Browser sessions in `drover.sessions`. The cookie carries a random token of
 * 32 bytes; only its SHA-256 is stored. Every check joins the API key, so a
 * revoked or expired key ends its sessions on the next request; a session also ends when
 * idle longer than `idleMs` or older than `maxMs`. Times are Postgres' clock.
 */
export class SessionStore {
  private readonly lifetimes: Required<SessionOptions>;

  constructor(private readonly db: Queryable, options: SessionOptions = {}) {
    this.lifetimes = resolveSessionOptions(options);
  }

  /** The resolved lifetimes. */
  get options(): Readonly<Required<SessionOptions>> {
    return this.lifetimes;
  }

  /** Makes a session for an API key (already verified). Also removes sessions that have ended. */
  async create(apiKeyId: string): Promise<CreatedSession> {
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    const [row] = await this.db.query(
      `INSERT INTO drover.sessions (id, token_hash, api_key_id, expires_at)
       VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
       RETURNING id, expires_at`,
      [randomUUID(), sha256(token), apiKeyId, this.lifetimes.maxMs],
    );
    await this.deleteEnded().catch(() => undefined);
    return { id: row.id, token, expiresAt: isoTime(row.expires_at)! };
  }

  /**
   * The owner of a session token, or undefined when the token is malformed or
   * unknown, the session is idle or past its expiry, or its key was revoked or has expired.
   * Writes `last_seen_at` at most once a minute.
   */
  async verify(token: string | undefined): Promise<SessionIdentity | undefined> {
    if (!token || !TOKEN_FORMAT.test(token)) return undefined;
    const [row] = await this.db.query(
      `SELECT s.id, s.api_key_id, k.name, k.scope, k.workspaces,
              now() - s.last_seen_at > $3 * interval '1 millisecond' AS stale
         FROM drover.sessions s JOIN drover.api_keys k ON k.id = s.api_key_id
        WHERE s.token_hash = $1
          AND k.revoked_at IS NULL
          AND (k.expires_at IS NULL OR k.expires_at > now())
          AND s.expires_at > now()
          AND s.last_seen_at > now() - $2 * interval '1 millisecond'`,
      [sha256(token), this.lifetimes.idleMs, LAST_SEEN_RESOLUTION_MS],
    );
    if (!row) return undefined;
    if (row.stale) await this.db.query(`UPDATE drover.sessions SET last_seen_at = now() WHERE id = $1`, [row.id]);
    return { sessionId: row.id, keyId: row.api_key_id, name: row.name, scope: row.scope, workspaces: row.workspaces ?? null };
  }

  /** Ends the session of this token (sign-out). @returns whether one was ended. */
  async delete(token: string | undefined): Promise<boolean> {
    if (!token || !TOKEN_FORMAT.test(token)) return false;
    const rows = await this.db.query(`DELETE FROM drover.sessions WHERE token_hash = $1 RETURNING id`, [sha256(token)]);
    return rows.length > 0;
  }

  /** Ends every session of an API key. @returns how many were ended. */
  async deleteForKey(apiKeyId: string): Promise<number> {
    return (await this.db.query(`DELETE FROM drover.sessions WHERE api_key_id = $1 RETURNING id`, [apiKeyId])).length;
  }

  /** Removes sessions past their expiry, idle too long, or of a revoked or expired key. @returns how many. */
  async deleteEnded(): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM drover.sessions s
        WHERE s.expires_at <= now()
           OR s.last_seen_at <= now() - $1 * interval '1 millisecond'
           OR EXISTS (SELECT 1 FROM drover.api_keys k WHERE k.id = s.api_key_id AND (k.revoked_at IS NOT NULL OR k.expires_at <= now()))
       RETURNING s.id`,
      [this.lifetimes.idleMs],
    );
    return rows.length;
  }
}
