import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { ConfigError, DroverError } from '../errors';
import { EmbeddedPostgres, postgresOwner, stopStaleServer } from './embedded-postgres';
import { freePort, isPortOpen } from './free-port';

/** Name of the database drover uses inside the embedded server. */
export const EMBEDDED_DATABASE = 'drover';

interface EmbeddedState { port: number }

const stateFile = (dataDir: string) => path.join(dataDir, 'postgres.json');
const pgDir = (dataDir: string) => path.join(dataDir, 'pg');

/**
 * The connection string of the embedded database of `dataDir`, as the last
 * `drover start` left it (for `drover migrate`, the TypeORM CLI, scripts),
 * or on `port` when the caller knows where its postmaster listens.
 */
export function embeddedDatabaseUrl(dataDir: string, port?: number): string {
  let state: EmbeddedState;
  let password: string;
  try {
    state = JSON.parse(fs.readFileSync(stateFile(dataDir), 'utf8')) as EmbeddedState;
    password = fs.readFileSync(path.join(pgDir(dataDir), 'drover-password'), 'utf8').trim();
  } catch {
    throw new ConfigError(`no drover data in ${dataDir} (DROVER_DATA_DIR): run "drover start" once, or set DATABASE_URL`);
  }
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port ?? state.port}/${EMBEDDED_DATABASE}`;
}

/** A running embedded database and how to stop it. */
export interface EmbeddedDatabase {
  url: string;
  server: EmbeddedPostgres;
  stop(): Promise<void>;
}

/**
 * Starts the persistent embedded Postgres under `dataDir/pg`, keeping its port
 * across restarts when it is free, and creates the `drover` database.
 */
export async function startEmbeddedDatabase(dataDir: string, onNotice?: (line: string) => void): Promise<EmbeddedDatabase> {
  fs.mkdirSync(dataDir, { recursive: true });
  let port = 0;
  try {
    port = (JSON.parse(fs.readFileSync(stateFile(dataDir), 'utf8')) as EmbeddedState).port;
  } catch {
    // first start
  }
  // Another drover running on this data dir keeps it; a postgres left by a killed earlier start is stopped.
  const owner = postgresOwner(pgDir(dataDir));
  if (owner) {
    throw new DroverError('already_running', `another drover is already running on ${dataDir} (pid ${owner.pid}, embedded Postgres pid ${owner.postgresPid} on port ${owner.port}): stop it first, or use another DROVER_DATA_DIR`);
  }
  const stale = await stopStaleServer(pgDir(dataDir));
  if (stale) onNotice?.(`stopped a Postgres (pid ${stale}) left running by an earlier start`);
  // Keep the port of the last start when it is free; otherwise move.
  const preferred = port && !(await isPortOpen(port)) ? port : await freePort();
  const server = new EmbeddedPostgres({ dataDir: pgDir(dataDir), port: preferred });
  const adminUrl = await server.start();
  fs.writeFileSync(stateFile(dataDir), JSON.stringify({ port: server.port }) + '\n');
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DATABASE]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
  } finally {
    await admin.end();
  }
  return { url: embeddedDatabaseUrl(dataDir), server, stop: () => server.stop() };
}
