import type { Queryable } from '../db/sql';

/** A key of a scope: what a lock, a count or a limit is about. */
export interface KeyRef {
  scope: string;
  key: string;
}

/**
 * Takes the transaction-scoped advisory locks of `keys`, in the order of
 * their hashes (one statement; Postgres evaluates a volatile target list
 * after the sort, so the locks are taken in that order). Every flow-control
 * transaction locks its keys this way before any row, so two of them never
 * wait on each other in a cycle; the locks go at commit or rollback.
 */
export async function lockKeys(tx: Queryable, keys: KeyRef[]): Promise<void> {
  if (keys.length === 0) return;
  await tx.query(`
    SELECT pg_advisory_xact_lock(h) FROM (
      SELECT DISTINCT hashtextextended(s || chr(1) || k, 16) AS h FROM unnest($1::text[], $2::text[]) AS t(s, k)) x
     ORDER BY h`, [keys.map((k) => k.scope), keys.map((k) => k.key)]);
}
