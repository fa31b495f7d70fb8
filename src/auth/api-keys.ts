import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../db/sql';
import { ConfigError } from '../errors';
import { isoTime, isUuid } from '../json';
import { WORKSPACE_NAME } from '../runs/schemas';
import { isScope, SCOPES, type Scope } from './scopes';

/** An API key as listed (never its secret). */
export interface ApiKeyView {
  id: string;
  name: string;
  /** Public part of the key, shown so operators can tell keys apart. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** What the key may do. */
  scope: Scope;
  /** The workspaces whose runs the key sees and acts on; null: every workspace. */
  workspaces: string[] | null;
  /** When the key stops working (ISO-8601); null: never. */
  expiresAt: string | null;
}

/** What a new key may do (`ApiKeyStore.create`). */
export interface ApiKeyOptions {
  /** Default `admin` (the first-start key and keys made in-process before scopes existed). */
  scope?: Scope;
  /** Limit the key to these workspaces' runs (it cannot open Bull Board nor `/metrics`). Default: none (every workspace). */
  workspaces?: string[];
  /** The key stops working this long after it is made. Default: never. */
  expiresInMs?: number;
}

/** A key just made: `key` is shown once and never stored. */
export interface CreatedApiKey extends ApiKeyView {
  key: string;
}

/** Who a verified key belongs to. */
export interface ApiKeyIdentity {
  id: string;
  name: string;
  scope: Scope;
  /** null: every workspace. */
  workspaces: string[] | null;
}

/** What `ApiKeyStore.verify` made of a presented key. */
export type ApiKeyCheck =
  | { ok: true; identity: ApiKeyIdentity }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'expired'; expiresAt: string };

/** Key names: printable, short, no spaces at the ends. */
export const API_KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,127}$/;
/** `drv_<12 hex prefix>_<43 base64url secret>`. */
const KEY_FORMAT = /^drv_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
// last_used_at is a hint for operators; writing it on every request would cost a row update per call.
const LAST_USED_RESOLUTION_MS = 60_000;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

function toView(row: any): ApiKeyView {
  return {
    id: row.id, name: row.name, prefix: row.prefix,
    createdAt: isoTime(row.created_at)!, lastUsedAt: isoTime(row.last_used_at), revokedAt: isoTime(row.revoked_at),
    scope: row.scope, workspaces: row.workspaces ?? null, expiresAt: isoTime(row.expires_at),
  };
}

const VIEW_COLUMNS = 'id, name, prefix, created_at, last_used_at, revoked_at, scope, workspaces, expires_at';

/** Checks and normalises the options of a new key, throwing `ConfigError` on a bad one. */
function resolveKeyOptions(options: ApiKeyOptions): { scope: Scope; workspaces: string[] | null; expiresInMs: number | null } {
  const scope = options.scope ?? 'admin';
  if (!isScope(scope)) throw new ConfigError(`key scope must be one of ${SCOPES.join(', ')} (got "${String(scope)}")`);
  const workspaces = options.workspaces ?? [];
  if (!Array.isArray(workspaces)) throw new ConfigError('key workspaces must be a list of workspace names');
  for (const w of workspaces) {
    if (typeof w !== 'string' || !WORKSPACE_NAME.test(w)) throw new ConfigError(`key workspace "${String(w)}" is not a workspace name ([A-Za-z0-9][A-Za-z0-9._-]{0,63})`);
  }
  const expiresInMs = options.expiresInMs ?? null;
  if (expiresInMs !== null && (!Number.isSafeInteger(expiresInMs) || expiresInMs < 1)) {
    throw new ConfigError(`key lifetime must be a positive whole number of milliseconds (got ${expiresInMs})`);
  }
  return { scope, workspaces: workspaces.length ? [...new Set(workspaces)].sort() : null, expiresInMs };
}

/**
 * API keys in `drover.api_keys`. A key is `drv_<prefix>_<secret>` with 32
 * random bytes of secret; only the SHA-256 of the whole key is stored, and a
 * key is found by its prefix then compared in constant time.
 */
export class ApiKeyStore {
  constructor(private readonly db: Queryable) {}

  /**
   * Makes a key: `admin` with no workspace limit and no expiry unless
   * `options` says otherwise. The returned `key` is the only copy of the secret.
   */
  async create(name: string, options: ApiKeyOptions = {}): Promise<CreatedApiKey> {
    if (typeof name !== 'string' || !API_KEY_NAME.test(name)) {
      throw new ConfigError(`key name must be 1-128 characters of letters, digits, space and ._@:- starting with a letter or digit (got "${name}")`);
    }
    const { scope, workspaces, expiresInMs } = resolveKeyOptions(options);
    const prefix = randomBytes(6).toString('hex');
    const key = `drv_${prefix}_${randomBytes(32).toString('base64url')}`;
    const [row] = await this.db.query(
      `INSERT INTO drover.api_keys (id, name, prefix, hash, scope, workspaces, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, now() + $7 * interval '1 millisecond')
       RETURNING ${VIEW_COLUMNS}`,
      [randomUUID(), name, prefix, sha256(key), scope, workspaces, expiresInMs],
    );
    return { ...toView(row), key };
  }

  /** Every key, newest first, without secrets. */
  async list(): Promise<ApiKeyView[]> {
    const rows = await this.db.query(`SELECT ${VIEW_COLUMNS} FROM drover.api_keys ORDER BY created_at DESC, id`);
    return rows.map(toView);
  }

  /**
   * Revokes the key with this id or prefix.
   * @returns the key, or undefined when none matches.
   */
  async revoke(idOrPrefix: string): Promise<ApiKeyView | undefined> {
    const column = isUuid(idOrPrefix) ? 'id' : 'prefix';
    if (column === 'prefix' && !/^[0-9a-f]{12}$/.test(idOrPrefix)) return undefined;
    const [row] = await this.db.query(
      `UPDATE drover.api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE ${column} = $1
       RETURNING ${VIEW_COLUMNS}`,
      [idOrPrefix],
    );
    return row ? toView(row) : undefined;
  }

  /**
   * The owner of a presented key; `invalid` when it is malformed, unknown or
   * revoked, `expired` when it is past its expiry (Postgres' clock).
   */
  async verify(presented: string): Promise<ApiKeyCheck> {
    const match = KEY_FORMAT.exec(presented);
    if (!match) return { ok: false, reason: 'invalid' };
    const [row] = await this.db.query(
      `SELECT id, name, hash, revoked_at, last_used_at, scope, workspaces, expires_at, expires_at <= now() AS expired
         FROM drover.api_keys WHERE prefix = $1`,
      [match[1]],
    );
    const expected = Buffer.from(row?.hash ?? '0'.repeat(64), 'hex');
    const actual = Buffer.from(sha256(presented), 'hex');
    const equal = timingSafeEqual(expected, actual);
    if (!row || !equal || row.revoked_at) return { ok: false, reason: 'invalid' };
    if (row.expired) return { ok: false, reason: 'expired', expiresAt: isoTime(row.expires_at)! };
    if (!row.last_used_at || Date.now() - new Date(row.last_used_at).getTime() > LAST_USED_RESOLUTION_MS) {
      void this.db.query(`UPDATE drover.api_keys SET last_used_at = now() WHERE id = $1`, [row.id]).catch(() => undefined);
    }
    return { ok: true, identity: { id: row.id, name: row.name, scope: row.scope, workspaces: row.workspaces ?? null } };
  }
}
