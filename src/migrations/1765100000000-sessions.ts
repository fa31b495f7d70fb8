import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Browser sessions made at `/login`: only a SHA-256 of the session token is
 * stored, with the API key it was made from (a revoked or deleted key ends
 * its sessions), its last-seen time (idle expiry) and an absolute expiry.
 */
export class Sessions1765100000000 implements MigrationInterface {
  name = 'Sessions1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE drover.sessions (
        id uuid PRIMARY KEY,
        token_hash varchar(64) NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
        api_key_id uuid NOT NULL REFERENCES drover.api_keys (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        CHECK (expires_at > created_at)
      )`);
    await q.query(`CREATE INDEX sessions_api_key_id ON drover.sessions (api_key_id)`);
    await q.query(`CREATE INDEX sessions_expires_at ON drover.sessions (expires_at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE drover.sessions`);
  }
}
