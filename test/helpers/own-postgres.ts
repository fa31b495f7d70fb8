import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { migrate } from '../../src/db/data-source';
import { EmbeddedPostgres } from '../../src/embedded/embedded-postgres';
import { databaseUrl } from '../harness/services';
import type { BackendKind } from './env';

/** A Postgres server of the test's own (one it may stop and restart), with a migrated database `work`. */
export interface OwnPostgres {
  server: EmbeddedPostgres;
  /** The temporary folder holding the data directory (`<dir>/pg`). */
  dir: string;
  /** URL of the migrated database. */
  url: string;
}

/** Starts a Postgres of the test's own under a fresh temporary folder and migrates a `work` database for `backend`. */
export async function startOwnPostgres(prefix: string, backend: BackendKind): Promise<OwnPostgres> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `drover-${prefix}-`));
  fs.chmodSync(dir, 0o755);
  const server = new EmbeddedPostgres({ dataDir: path.join(dir, 'pg'), fsync: false });
  const admin = await server.start();
  const c = new Client({ connectionString: admin });
  await c.connect();
  await c.query('CREATE DATABASE work');
  await c.end();
  const url = databaseUrl(admin, 'work');
  await migrate(url, { queueBackend: backend === 'postgres' ? 'postgres' : 'redis' });
  return { server, dir, url };
}
