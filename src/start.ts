import type { DroverConfig } from './config';
import { migrate } from './db/data-source';
import { Drover } from './drover';
import { startServer, type DroverServer } from './http/server';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './infra/embedded-database';
import type { Logger } from './logger';
import { loadUserModule } from './module-loader';
import type { DroverWorker } from './worker';

/** Options of `startAll`. */
export interface StartOptions {
  config: DroverConfig;
  /** A user module path (workflows and processors) for the worker. Default none. */
  module?: string;
  logger: Logger;
  /** Where the URLs are printed. Default stdout. */
  print?: (line: string) => void;
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
 * migrations, the API server with Bull Board, and one worker.
 */
export async function startAll(options: StartOptions): Promise<StartedDrover> {
  const { config, logger } = options;
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const mod = options.module ? loadUserModule(options.module) : undefined;
  const stack: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const step of stack.reverse().splice(0)) await step().catch((err) => logger.warn({ err }, 'error while stopping'));
  };
  try {
    let embedded: EmbeddedDatabase | undefined;
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      embedded = await startEmbeddedDatabase(config.dataDir);
      stack.push(() => embedded!.stop());
      databaseUrl = embedded.url;
      print(`embedded Postgres in ${config.dataDir} (port ${embedded.server.port})`);
    }
    await migrate(databaseUrl, { queueBackend: config.redisUrl ? 'redis' : 'postgres' });
    const drover = await Drover.connect({
      databaseUrl, redisUrl: config.redisUrl, namespace: config.namespace, maxInputBytes: config.maxInputBytes, logger,
    });
    stack.push(() => drover.close());
    const worker = drover.createWorker({ module: mod });
    await worker.run();
    stack.push(() => worker.close());
    const server = await startServer({
      drover, auth: config.auth, port: config.port, host: config.host, logger, maxInputBytes: config.maxInputBytes,
    });
    stack.push(() => server.close());
    print(`drover listening on ${server.url}`);
    print(`  API          ${server.url}/api/runs`);
    print(`  Bull Board   ${server.url}/admin/queues`);
    print(`  metrics      ${server.url}/metrics`);
    print(`  worker       ${worker.id} on queues ${worker.queues.join(', ')}`);
    return { url: server.url, databaseUrl, drover, server, worker, close };
  } catch (error) {
    await close();
    throw error;
  }
}
