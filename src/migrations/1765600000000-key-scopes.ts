import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * API key scopes, workspace limits and expiry. Existing keys become `admin`
 * with no workspace limit (`workspaces` NULL) and no expiry, so they keep
 * working exactly as before.
 */
export class KeyScopes1765600000000 implements MigrationInterface {
  name = 'KeyScopes1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE drover.api_keys
        ADD COLUMN scope varchar(16) NOT NULL DEFAULT 'admin' CHECK (scope IN ('read', 'producer', 'admin')),
        ADD COLUMN workspaces text[] NULL CHECK (workspaces IS NULL OR cardinality(workspaces) > 0),
        ADD COLUMN expires_at timestamptz NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.api_keys DROP COLUMN scope, DROP COLUMN workspaces, DROP COLUMN expires_at`);
  }
}
