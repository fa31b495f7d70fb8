import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type DroverConfig } from '../config';
import type { Drover } from '../drover';
import { DroverError } from '../errors';
import type { Logger } from '../telemetry/logger';
import { VERSION } from '../version';

// The engine, express, Bull Board and TypeORM load only when a command needs
// them, so `--help` and configuration errors answer at once.
const lazy = {
  drover: () => import('../drover'),
  migrations: () => import('../db/data-source'),
  server: () => import('../http/server'),
  embedded: () => import('../embedded/embedded-database'),
  logger: () => import('../telemetry/logger'),
  moduleLoader: () => import('../workflows/module-loader'),
  worker: () => import('../worker/worker'),
  start: () => import('./start'),
};

/** Where the CLI writes (tests and embedders may capture it). */
interface Io {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Io = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** One line saying what went wrong and, where we can tell, what to fix. */
export function describeError(error: unknown): string {
  if (error instanceof DroverError) return error.message;
  const e = error as { code?: unknown; message?: unknown; address?: unknown; port?: unknown; hostname?: unknown };
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const firstLine = typeof e?.message === 'string' && e.message ? e.message.split('\n')[0] : String(error);
  switch (code) {
    case 'ECONNREFUSED':
      return `cannot connect to ${e.address ?? 'the server'}${e.port ? `:${e.port}` : ''} (connection refused): check DATABASE_URL and REDIS_URL and that the server runs`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve host ${e.hostname ?? ''}: check DATABASE_URL and REDIS_URL`;
    case '28P01':
    case '28000':
      return `Postgres refused the credentials: check the user and password in DATABASE_URL (${firstLine})`;
    case '3D000':
      return `${firstLine}: create it or fix DATABASE_URL`;
    default:
      if (/timeout/i.test(firstLine)) return `${firstLine}: is the database reachable? check DATABASE_URL`;
      return firstLine;
  }
}

async function databaseUrlOf(config: DroverConfig): Promise<string> {
  return config.databaseUrl ?? (await lazy.embedded()).embeddedDatabaseUrl(config.dataDir);
}

async function withDrover<T>(config: DroverConfig, logger: Logger, work: (drover: Drover) => Promise<T>): Promise<T> {
  const { Drover } = await lazy.drover();
  const drover = await Drover.connect({
    databaseUrl: await databaseUrlOf(config), redisUrl: config.redisUrl, namespace: config.namespace,
    maxInputBytes: config.maxInputBytes, logger,
  });
  try {
    return await work(drover);
  } finally {
    await drover.close();
  }
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Resolves on the first SIGINT, SIGTERM or SIGHUP; another one a second or more
 * later exits at once. (Ctrl-C under `npm start` delivers SIGINT twice at once:
 * from the terminal and forwarded by npm.)
 *
 * Run by npm (`npm start`), it also resolves when npm goes away without passing a
 * signal on (npm dies of SIGHUP or SIGKILL): drover is then an orphan that nobody
 * would stop, so it stops itself.
 */
function untilSignal(io: Io): Promise<void> {
  return new Promise((resolve) => {
    let firstAt = 0;
    const parent = process.ppid;
    const watch = process.env.npm_lifecycle_event ? setInterval(() => {
      if (process.ppid !== parent) stop(`npm (pid ${parent}) exited`);
    }, 500).unref() : undefined;
    const stop = (reason: string) => {
      if (firstAt) {
        if (Date.now() - firstAt < 1000) return;
        io.err(`drover: ${reason} again: exiting now`);
        process.exit(130);
      }
      firstAt = Date.now();
      clearInterval(watch);
      io.err(`drover: ${reason}: shutting down (send it again to exit at once)`);
      resolve();
    };
    for (const signal of STOP_SIGNALS) process.on(signal, () => stop(signal));
  });
}

function warnAuthOff(config: DroverConfig, logger: Logger, io: Io): void {
  if (config.auth) return;
  const warning = 'DROVER_AUTH=off: the API, Bull Board and dashboard accept requests WITHOUT an API key. For local development only.';
  logger.warn(warning);
  io.err(`drover: WARNING: ${warning}`);
}

const wholeNumber = (min: number, max: number) => (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}.`);
  }
  return Number(value);
};

const queueList = (value: string): string[] => {
  const queues = value.split(',').map((q) => q.trim()).filter(Boolean);
  if (queues.length === 0) throw new InvalidArgumentError('must name at least one queue (a,b,c).');
  return queues;
};

const jsonObject = (value: string): Record<string, unknown> => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`is not valid JSON (${(error as Error).message}).`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object.');
  return parsed as Record<string, unknown>;
};

/** Builds the `drover` program; each action stores its exit code in `result.code`. */
function buildProgram(io: Io, result: { code: number }): Command {
  const program = new Command('drover')
    .description('Durable DAG workflows on BullMQ, with state in Postgres')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(`drover: ${s.replace(/^error: /, '')}`),
    });

  /** Runs an action with the config and a logger; any error becomes one line and exit code 1. */
  const action = <A extends unknown[]>(body: (config: DroverConfig, logger: Logger, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      try {
        const config = loadConfig();
        const logger = (await lazy.logger()).createLogger(config.logLevel);
        result.code = await body(config, logger, ...args);
      } catch (error) {
        io.err(`drover: ${describeError(error)}`);
        result.code = 1;
      }
    };

  program.command('start')
    .description('all in one: Postgres (embedded when DATABASE_URL is unset), migrations, API server, Bull Board and a worker')
    .option('-m, --module <path>', 'a module of workflows and processors (.js, .cjs or .ts) for the worker')
    .action(action(async (config, logger, opts: { module?: string }) => {
      const { startAll, StartAborted } = await lazy.start();
      warnAuthOff(config, logger, io);
      // Listening from the start: a signal while starting stops what was started (the embedded Postgres too).
      const stopping = new AbortController();
      void untilSignal(io).then(() => stopping.abort());
      try {
        const started = await startAll({ config, logger, module: opts.module, print: (line) => io.out(line), signal: stopping.signal });
        if (!stopping.signal.aborted) await new Promise((resolve) => stopping.signal.addEventListener('abort', resolve, { once: true }));
        await started.close();
      } catch (error) {
        if (!(error instanceof StartAborted)) throw error;
      }
      return 0;
    }));

  program.command('server')
    .description('the API server, Bull Board and /health, /ready, /metrics (no worker)')
    .action(action(async (config, logger) => {
      warnAuthOff(config, logger, io);
      const { assertMigrated, startServer } = await lazy.server();
      return withDrover(config, logger, async (drover) => {
        await assertMigrated(drover);
        drover.queues.connect(); // an unreachable Redis is reported now, not at the first request
        const server = await startServer({
          drover, auth: config.auth, port: config.port, host: config.host, logger, maxInputBytes: config.maxInputBytes,
        });
        io.out(`drover server listening on ${server.url}`);
        logger.info({ url: server.url, queueBackend: drover.queues.kind }, 'server listening');
        await untilSignal(io);
        await server.close();
        return 0;
      });
    }));

  program.command('worker')
    .description('a worker: runs the steps of the module\'s workflows')
    .requiredOption('-m, --module <path>', 'the module of workflows and processors (.js, .cjs or .ts)')
    .option('-q, --queues <a,b>', 'queues to consume (default: every queue the module\'s workflows use)', queueList)
    .option('-c, --concurrency <n>', 'steps run at once per queue', wholeNumber(1, 10_000), 10)
    .action(action(async (config, logger, opts: { module: string; queues?: string[]; concurrency: number }) => {
      const mod = (await lazy.moduleLoader()).loadUserModule(opts.module);
      const worker = (await lazy.worker()).createWorker({
        databaseUrl: await databaseUrlOf(config), redisUrl: config.redisUrl, namespace: config.namespace,
        module: mod, queues: opts.queues, concurrency: opts.concurrency, logger,
      });
      await worker.run();
      io.out(`drover worker ${worker.id} consuming ${worker.queues.join(', ')} (concurrency ${worker.concurrency})`);
      await untilSignal(io);
      await worker.close();
      return 0;
    }));

  program.command('migrate')
    .description('applies the database migrations (and BullMQ\'s when the queues live in Postgres)')
    .action(action(async (config) => {
      const { migrate } = await lazy.migrations();
      const applied = await migrate(await databaseUrlOf(config), { queueBackend: config.redisUrl ? 'redis' : 'postgres' });
      io.out(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'the database is up to date');
      return 0;
    }));

  const keys = program.command('keys').description('API keys: create, list, revoke');
  keys.command('create')
    .description('makes a new API key and prints it once (only its hash is stored)')
    .requiredOption('-n, --name <name>', 'a name for the key (shown as api:<name> in the audit log)')
    .action(action(async (config, logger, opts: { name: string }) => withDrover(config, logger, async (drover) => {
      const created = await drover.apiKeys.create(opts.name);
      io.out(created.key);
      io.err(`created API key "${created.name}" (id ${created.id}, prefix ${created.prefix}); it is shown only now: store it safely`);
      return 0;
    })));
  keys.command('list')
    .description('lists the API keys (never their secrets)')
    .option('--json', 'print JSON')
    .action(action(async (config, logger, opts: { json?: boolean }) => withDrover(config, logger, async (drover) => {
      const list = await drover.apiKeys.list();
      if (opts.json) {
        io.out(JSON.stringify(list, null, 2));
      } else {
        io.out(['ID', 'PREFIX', 'NAME', 'CREATED', 'LAST USED', 'REVOKED'].join('\t'));
        for (const k of list) io.out([k.id, k.prefix, k.name, k.createdAt, k.lastUsedAt ?? '-', k.revokedAt ?? '-'].join('\t'));
      }
      return 0;
    })));
  keys.command('revoke')
    .description('revokes a key by its id or prefix')
    .argument('<id-or-prefix>', 'the key\'s id (uuid) or prefix')
    .action(action(async (config, logger, idOrPrefix: string) => withDrover(config, logger, async (drover) => {
      const revoked = await drover.apiKeys.revoke(idOrPrefix);
      if (!revoked) {
        io.err(`drover: no API key with id or prefix "${idOrPrefix}"`);
        return 1;
      }
      io.out(`revoked API key "${revoked.name}" (id ${revoked.id}, prefix ${revoked.prefix})`);
      return 0;
    })));

  const runs = program.command('runs').description('create and read runs (for scripts; prints JSON)');
  runs.command('create')
    .description('starts a run of WORKFLOW')
    .argument('<workflow>', 'the workflow name')
    .addOption(new Option('-i, --input <json>', 'the run input, a JSON object').argParser(jsonObject))
    .option('-k, --idempotency-key <key>', 'returns the existing run when this key was seen')
    .option('-w, --workspace <name>', 'the workspace (default "default")')
    .action(action(async (config, logger, workflow: string, opts: { input?: Record<string, unknown>; idempotencyKey?: string; workspace?: string }) =>
      withDrover(config, logger, async (drover) => {
        const { run } = await drover.submitRun({
          workflow, input: opts.input, idempotencyKey: opts.idempotencyKey, workspace: opts.workspace,
        }, { actor: 'cli' });
        io.out(JSON.stringify(run, null, 2));
        return 0;
      })));
  runs.command('get')
    .description('prints a run with its steps')
    .argument('<id>', 'the run id')
    .action(action(async (config, logger, id: string) => withDrover(config, logger, async (drover) => {
      io.out(JSON.stringify(await drover.getRun(id), null, 2));
      return 0;
    })));

  return program;
}

/**
 * The `drover` command line. Resolves to the process exit code; bad flags,
 * bad JSON and bad configuration give one line on stderr and a non-zero code.
 */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const result = { code: 0 };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) result.code = error.exitCode;
    else {
      io.err(`drover: ${describeError(error)}`);
      result.code = 1;
    }
  }
  if (argv === process.argv) {
    // A safety net for the `drover` binary: whatever a library left open, the command ends.
    setTimeout(() => process.exit(result.code), 3_000).unref();
  }
  return result.code;
}
