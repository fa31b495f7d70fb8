import type { DroverConfig } from '../config';
import { migrate } from '../db/data-source';
import { Drover } from '../drover';
import { startServer, type DroverServer } from '../http/server';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../embedded/embedded-database';
import type { Logger } from '../telemetry/logger';
import type { ApiKeyStore } from '../auth/api-keys';
import { loadUserModule } from '../workflows/module-loader';
import { demoProcessors, demoWorkflows } from '../processors/demo';
import type { DroverWorker } from '../worker/worker';
import type { Tracing } from '../telemetry/tracing';

/** Options of `startAll`. */
export interface StartOptions {
  config: DroverConfig;
  /** A user module path (workflows and processors) for the worker. Default none. */
  module?: string;
  logger: Logger;
  /** Where the URLs are printed. Default stdout. */
  print?: (line: string) => void;
  /** Print one JSON line (`StartedInfo`) once started, instead of the banner. Default false. */
  json?: boolean;
  /** Aborting it (a signal while starting) stops what was started and rejects with `StartAborted`. */
  signal?: AbortSignal;
  /** OpenTelemetry tracing for the Drover and its worker. Default none (off). */
  tracing?: Tracing;
}

/** What `drover start --json` prints once started: one line of JSON. */
export interface StartedInfo {
  url: string;
  dashboard: string;
  api: string;
  bullBoard: string;
  metrics: string;
  worker: { id: string; queues: string[] };
  /** The embedded Postgres, when `DATABASE_URL` is unset. */
  embeddedPostgres: { dataDir: string; port: number } | null;
  auth: boolean;
  /** The key made on the first start (printed only then); null otherwise. */
  apiKey: string | null;
}

/** `startAll` was aborted before it finished starting; what it had started is stopped. */
export class StartAborted extends Error {
  constructor() {
    super('start aborted');
  }
}

/** Everything `drover start` runs, and how to stop it. */
export interface StartedDrover {
  url: string;
  databaseUrl: string;
  drover: Drover;
  server: DroverServer;
  worker: DroverWorker;
  /** Stops the server, the worker (gracefully), the connections and the embedded database. */
  close(): Promise<void>;
}

/**
 * All in one process: Postgres (embedded when `DATABASE_URL` is unset),
 * migrations, the API server with Bull Board, and one worker running the
 * built-in demo workflows plus the user's module. On the first start it makes
 * an API key and prints it once.
 */
export async function startAll(options: StartOptions): Promise<StartedDrover> {
  const { config, logger } = options;
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const mod = options.module ? await loadUserModule(options.module, { logger }) : undefined;
  const stack: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const stopPart of stack.reverse().splice(0)) await stopPart().catch((err) => logger.warn({ reason: (err as Error)?.message }, 'error while stopping'));
  };
  // Each start-up step gives way to an abort (it may wait long, e.g. for an unreachable Redis).
  const aborted = new Promise<never>((_, reject) => {
    if (options.signal?.aborted) reject(new StartAborted());
    options.signal?.addEventListener('abort', () => reject(new StartAborted()), { once: true });
  });
  aborted.catch(() => undefined);
  const step = <T>(work: Promise<T>): Promise<T> => Promise.race([work, aborted]);
  /** Starts a part that `close()` stops, even when the abort came while it was starting. */
  const part = <T>(starting: Promise<T>, stop: (started: T) => Promise<void>): Promise<T> => {
    stack.push(() => starting.then(stop, () => undefined));
    return step(starting);
  };
  try {
    let embedded: EmbeddedDatabase | undefined;
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      embedded = await part(startEmbeddedDatabase(config.dataDir, options.json ? (line) => process.stderr.write(`${line}\n`) : print), (e) => e.stop());
      databaseUrl = embedded.url;
      if (!options.json) print(`embedded Postgres in ${config.dataDir} (port ${embedded.server.port})`);
    }
    const directUrl = config.databaseUrl ? config.databaseDirectUrl : undefined;
    await step(migrate(directUrl ?? databaseUrl, { queueBackend: config.redisUrl ? 'redis' : 'postgres' }));
    const drover = await part(Drover.connect({
      databaseUrl, databaseDirectUrl: directUrl, preparedStatements: config.preparedStatements,
      redisUrl: config.redisUrl, namespace: config.namespace, maxInputBytes: config.maxInputBytes, logger,
      sessions: { idleMs: config.sessionIdleMs, maxMs: config.sessionMaxMs }, tracing: options.tracing, retentionDays: config.retentionDays,
    }), (d) => d.close());
    // The built-in demo workflows, plus the user's module when given; the schedule tick and retention run once, below.
    const worker = drover.createWorker({
      module: mod, workflows: demoWorkflows, processors: demoProcessors, recordStartAfterMs: config.recordStartAfterMs,
      maxOutputBytes: config.maxOutputBytes, maintenance: false,
    });
    stack.push(() => worker.close());
    await step(worker.run());
    const server = await part(startServer({
      drover, auth: config.auth, port: config.port, host: config.host, logger, maxInputBytes: config.maxInputBytes,
      cookieSecure: config.cookieSecure, allowedHosts: config.allowedHosts, authFailuresPerMinute: config.authFailuresPerMinute,
      bullBoard: config.bullBoard, metricsAuth: config.metricsAuth,
    }), (s) => s.close());
    const maintenance = drover.startMaintenance();
    stack.push(() => maintenance.stop());
    const key = config.auth ? await firstStartKey(drover.apiKeys) : undefined;
    if (options.json) {
      const info: StartedInfo = {
        url: server.url, dashboard: `${server.url}/`, api: `${server.url}/api/runs`, bullBoard: `${server.url}/admin/queues`, metrics: `${server.url}/metrics`,
        worker: { id: worker.id, queues: worker.queues }, embeddedPostgres: embedded ? { dataDir: config.dataDir, port: embedded.server.port } : null,
        auth: config.auth, apiKey: key ?? null,
      };
      print(JSON.stringify(info));
      return { url: server.url, databaseUrl, drover, server, worker, close };
    }
    print(`drover listening on ${server.url}`);
    print(`  dashboard    ${server.url}/   (sign in with the API key at ${server.url}/login)`);
    print(`  API          ${server.url}/api/runs`);
    print(`  Bull Board   ${server.url}/admin/queues`);
    print(`  metrics      ${server.url}/metrics`);
    print(`  worker       ${worker.id} on queues ${worker.queues.join(', ')}`);
    if (!config.auth) {
      print('  auth         OFF (DROVER_AUTH=off): for local development only');
    } else if (key) {
      // The only time the key is printed (it lands in terminal scrollback or container logs once, never twice).
      print(`  API key      ${key}   (shown once, stored hashed: sign in with it, and export DROVER_API_KEY=<this key> for curl)`);
    } else {
      print('  API key      made on first start (shown then only); export DROVER_API_KEY=<your key> for curl');
    }
    if (config.auth) print('  another key  npx drover keys create --name NAME');
    const auth = config.auth ? ' -H "Authorization: Bearer $DROVER_API_KEY"' : '';
    print(`try it:  curl -s -X POST${auth} -H 'Content-Type: application/json' -d '{"workflow":"demo"}' ${server.url}/api/runs`);
    return { url: server.url, databaseUrl, drover, server, worker, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** On the first start (no key exists yet), makes the key printed in the banner. */
async function firstStartKey(keys: ApiKeyStore): Promise<string | undefined> {
  if ((await keys.list()).length > 0) return undefined;
  // admin: the first-start key is the operator's own, for Bull Board's changes too.
  return (await keys.create('default', { scope: 'admin' })).key;
}
