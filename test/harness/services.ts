import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { migrate } from '../../src/db/data-source';
import { EmbeddedPostgres } from '../../src/embedded/embedded-postgres';
import { RedisServer } from './redis-server';

/** The template database every test file copies (already migrated). */
export const TEMPLATE_DB = 'drover_template';

/** Real Redis and Postgres servers for a test run, a benchmark or a chaos run. */
export interface Services {
  redis: RedisServer;
  postgres: EmbeddedPostgres;
  dir: string;
  /** Connection string of the server's `postgres` database (admin). */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway Redis and Postgres on free loopback ports and prepares a
 * migrated template database. `stop()` ends both and removes their files.
 */
export async function startServices(options: { fsync?: boolean; maxConnections?: number; settings?: Record<string, string> } = {}): Promise<Services> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-services-'));
  // As root the server runs as the postgres user, which must reach its data dir.
  fs.chmodSync(dir, 0o755);
  const redis = new RedisServer();
  const postgres = new EmbeddedPostgres({
    dataDir: path.join(dir, 'pg'), fsync: options.fsync ?? false, maxConnections: options.maxConnections ?? 500, settings: options.settings,
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.allSettled([redis.stop(), postgres.stop()]);
    redis.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [, adminUrl] = await Promise.all([redis.start(), postgres.start()]);
    const admin = new Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${TEMPLATE_DB}`);
    await admin.end();
    await migrate(databaseUrl(adminUrl, TEMPLATE_DB), { queueBackend: 'postgres' });
    return { redis, postgres, dir, adminUrl, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The same server URL pointing at another database. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}
