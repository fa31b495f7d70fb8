import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DroverConfig } from '../config';
import { ConfigError } from '../errors';

/** The database a CLI command works on, and how to let go of it. */
export interface CliDatabase {
  url: string;
  /** Whether this command started the embedded Postgres (and so must stop it). */
  started: boolean;
  /** Stops the embedded Postgres when this command started it; otherwise nothing. */
  close(): Promise<void>;
}

/** `dataDir` as the user would write it: relative to the working directory when inside it. */
function shown(dataDir: string): string {
  const relative = path.relative(process.cwd(), dataDir);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? `./${relative}` : dataDir;
}

/**
 * The database of a CLI command that needs no server (`keys`, `migrate`,
 * `runs`, `workflows`, `workers`): `DATABASE_URL` when set; otherwise the
 * embedded Postgres under `DROVER_DATA_DIR`. When a `drover start` runs on
 * that data dir, its Postgres is used as it is; when none runs, this starts
 * the embedded Postgres for the command and `close()` stops it again.
 * With `initialise` (`keys create`, `migrate`), a data dir that holds no
 * database yet gets one (the command migrates it, as the first `drover start`
 * would); other commands refuse it, naming what to do.
 * Errors name `DROVER_DATA_DIR`, not a `DATABASE_URL` the user never set.
 */
export async function openCliDatabase(config: DroverConfig, notice: (line: string) => void, options: { initialise?: boolean } = {}): Promise<CliDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, started: false, close: async () => undefined };
  const embedded = await import('../embedded/embedded-database');
  const { postgresOwner } = await import('../embedded/embedded-postgres');
  const dataDir = config.dataDir;
  const pgDir = path.join(dataDir, 'pg');
  const fresh = !fs.existsSync(path.join(pgDir, 'PG_VERSION'));
  if (fresh && !options.initialise) {
    throw new ConfigError(`no drover data in ${shown(dataDir)} (DROVER_DATA_DIR): run \`npm start\` once, or set DATABASE_URL`);
  }
  const owner = postgresOwner(pgDir);
  if (owner) return { url: embedded.embeddedDatabaseUrl(dataDir, owner.port), started: false, close: async () => undefined };
  let started: Awaited<ReturnType<typeof embedded.startEmbeddedDatabase>>;
  try {
    started = await embedded.startEmbeddedDatabase(dataDir, notice);
  } catch (error) {
    throw new ConfigError(`cannot start the embedded Postgres in ${shown(dataDir)} (DROVER_DATA_DIR): ${(error as Error).message.split('\n')[0]}`);
  }
  if (fresh) notice(`made a new drover database in ${shown(dataDir)} (DROVER_DATA_DIR); \`npm start\` uses it`);
  return { url: started.url, started: true, close: () => started.stop() };
}
