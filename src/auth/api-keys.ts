import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../db/sql';
import { ConfigError } from '../errors';
import { isoTime, isUuid } from '../json';

/** An API key as listed (never its secret). */
export interface ApiKeyView {
  id: string;
  name: string;
  /** Public part of the key, shown so operators can tell keys apart. */
  prefix: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** A key just made: `key` is shown once and never stored. */
export interface CreatedApiKey extends ApiKeyView {
  key: string;
}

/** Who a verified key belongs to. */
export interface ApiKeyIdentity {
  id: string;
  name: string;
}

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
  };
}

/**
 * API keys in `drover.api_keys`. A key is `drv_<prefix>_<secret>` with 32
 * random bytes of secret; only the SHA-256 of the whole key is stored, and a
 * key is found by its prefix then compared in constant time.
 */
export class ApiKeyStore {
  constructor(private readonly db: Queryable) {}

  /** Makes a key. The returned `key` is the only copy of the secret. */
  async create(name: string): Promise<CreatedApiKey> {
    if (typeof name !== 'string' || !API_KEY_NAME.test(name)) {
      throw new ConfigError(`key name must be 1-128 characters of letters, digits, space and ._@:- starting with a letter or digit (got "${name}")`);
    }
    const prefix = randomBytes(6).toString('hex');
    const key = `drv_${prefix}_${randomBytes(32).toString('base64url')}`;
    const [row] = await this.db.query(
      `INSERT INTO drover.api_keys (id, name, prefix, hash) VALUES ($1, $2, $3, $4)
       RETURNING id, name, prefix, created_at, last_used_at, revoked_at`,
      [randomUUID(), name, prefix, sha256(key)],
    );
    return { ...toView(row), key };
  }

  /** Every key, newest first, without secrets. */
  async list(): Promise<ApiKeyView[]> {
    const rows = await this.db.query(`SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM drover.api_keys ORDER BY created_at DESC, id`);
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
       RETURNING id, name, prefix, created_at, last_used_at, revoked_at`,
      [idOrPrefix],
    );
    return row ? toView(row) : undefined;
  }

  /** The owner of a presented key, or undefined when it is malformed, unknown or revoked. */
  async verify(presented: string): Promise<ApiKeyIdentity | undefined> {
    const match = KEY_FORMAT.exec(presented);
    if (!match) return undefined;
    const [row] = await this.db.query(
      `SELECT id, name, hash, revoked_at, last_used_at FROM drover.api_keys WHERE prefix = $1`,
      [match[1]],
    );
    const expected = Buffer.from(row?.hash ?? '0'.repeat(64), 'hex');
    const actual = Buffer.from(sha256(presented), 'hex');
    const equal = timingSafeEqual(expected, actual);
    if (!row || !equal || row.revoked_at) return undefined;
    if (!row.last_used_at || Date.now() - new Date(row.last_used_at).getTime() > LAST_USED_RESOLUTION_MS) {
      void this.db.query(`UPDATE drover.api_keys SET last_used_at = now() WHERE id = $1`, [row.id]).catch(() => undefined);
    }
    return { id: row.id, name: row.name };
  }
}
