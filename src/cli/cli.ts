import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { CONFIG_HELP, loadConfig, type DroverConfig } from '../config';
import type { Drover } from '../drover';
import { DroverError } from '../errors';
import { parseLifetime, SCOPES, isScope, type Scope } from '../auth/scopes';
import { WORKSPACE_NAME } from '../runs/schemas';
import type { Logger } from '../telemetry/logger';
import type { Tracing } from '../telemetry/tracing';
import { VERSION } from '../version';
import { openCliDatabase } from './database';
import { addScheduleCommands } from './schedule-commands';
import { addOperatorCommands, wholeNumber, type Io } from './operator-commands';
import { json, keysTable } from './output';

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
  metrics: () => import('../telemetry/metrics'),
  metricsServer: () => import('../telemetry/metrics-server'),
  tracing: () => import('../telemetry/tracing-sdk'),
};

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

/** The code of a failed command's JSON error: drover's own, else `usage_error` (exit 2) or `failed`. */
function errorCode(error: unknown, exitCode: number): string {
  if (error instanceof DroverError) return error.code;
  return exitCode === 2 ? 'usage_error' : 'failed';
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Runs a long-lived command with the tracing the `OTEL_*` variables ask for
 * (none when they do not), flushing its spans when the command ends.
 */
async function withTracing<T>(config: DroverConfig, serviceName: string, work: (tracing: Tracing | undefined) => Promise<T>): Promise<T> {
  const tracing = config.tracing ? (await lazy.tracing()).createTracing(config.tracing, serviceName) : undefined;
  try {
    return await work(tracing);
  } finally {
    await tracing?.close();
  }
}

async function databaseUrlOf(config: DroverConfig): Promise<string> {
  return config.databaseUrl ?? (await lazy.embedded()).embeddedDatabaseUrl(config.dataDir);
}

/** DATABASE_DIRECT_URL and DROVER_PREPARED_STATEMENTS (the direct URL only when the command uses DATABASE_URL). */
function pooling(config: DroverConfig, databaseUrl?: string): { databaseDirectUrl?: string; preparedStatements: boolean } {
  const direct = databaseUrl === undefined || databaseUrl === config.databaseUrl ? config.databaseDirectUrl : undefined;
  return { databaseDirectUrl: direct, preparedStatements: config.preparedStatements };
}

async function withDrover<T>(config: DroverConfig, logger: Logger, work: (drover: Drover) => Promise<T>, databaseUrl?: string, tracing?: Tracing): Promise<T> {
  const { Drover } = await lazy.drover();
  const drover = await Drover.connect({
    databaseUrl: databaseUrl ?? await databaseUrlOf(config), redisUrl: config.redisUrl, namespace: config.namespace,
    ...pooling(config, databaseUrl), maxInputBytes: config.maxInputBytes, logger, sessions: { idleMs: config.sessionIdleMs, maxMs: config.sessionMaxMs }, tracing,
    retentionDays: config.retentionDays,
  });
  try {
    return await work(drover);
  } finally {
    await drover.close();
  }
}

/**
 * Runs `work` on the database of a command that needs no server: see
 * `openCliDatabase` (it starts the embedded Postgres for the command when no
 * `drover start` runs on DROVER_DATA_DIR, and stops it after).
 */
async function withCliDatabase<T>(config: DroverConfig, io: Io, work: (databaseUrl: string) => Promise<T>, options: { initialise?: boolean } = {}): Promise<T> {
  const database = await openCliDatabase(config, (line) => io.err(`drover: ${line}`), options);
  // The embedded Postgres runs in a process group of its own, so Ctrl-C (e.g. during `runs wait`)
  // reaches only us: stop the Postgres we started before exiting.
  const onSignal = (signal: NodeJS.Signals) => {
    io.err(`drover: ${signal}: stopping the embedded Postgres this command started`);
    void database.close().finally(() => process.exit(130));
  };
  if (database.started) for (const signal of STOP_SIGNALS) process.once(signal, onSignal);
  try {
    return await work(database.url);
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    await database.close();
  }
}

/**
 * Usage errors exit 2, failures 1. Commander's own (bad flags and arguments) are
 * caught in `main`; here, what the engine refuses as invalid input (`invalid_request`:
 * a bad cursor, workflow or workspace name).
 */
/** Bad input from the command line (exit 2): a malformed request, schedule or run input. */
const USAGE_CODES = new Set(['invalid_request', 'invalid_schedule', 'invalid_input']);
const isUsageError = (error: unknown): boolean => error instanceof DroverError && USAGE_CODES.has(error.code);

/** The environment variables and their defaults, for `drover --help`. */
function environmentHelp(): string {
  const width = Math.max(...CONFIG_HELP.map((v) => v.name.length));
  return ['', 'Environment variables:', ...CONFIG_HELP.map((v) => `  ${v.name.padEnd(width)}  ${v.meaning}; default: ${v.defaultValue}`),
    '', 'Exit codes: 0 done, 1 failed, 2 usage error (bad option, argument or input); runs wait: 124 timed out.'].join('\n');
}

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

const queueList = (value: string): string[] => {
  const queues = value.split(',').map((q) => q.trim()).filter(Boolean);
  if (queues.length === 0) throw new InvalidArgumentError('must name at least one queue (a,b,c).');
  return queues;
};

const keyName = (value: string): string => {
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,127}$/.test(value)) {
    throw new InvalidArgumentError('must be 1 to 128 letters, digits, spaces or ._@:- and start with a letter or digit.');
  }
  return value;
};

const keyScope = (value: string): Scope => {
  if (!isScope(value)) throw new InvalidArgumentError(`must be one of ${SCOPES.join(', ')}.`);
  return value;
};

const addWorkspace = (value: string, previous: string[] = []): string[] => {
  if (!WORKSPACE_NAME.test(value)) throw new InvalidArgumentError('must be a workspace name: 1 to 64 letters, digits or ._- starting with a letter or digit.');
  return [...previous, value];
};

const keyLifetime = (value: string): number => {
  const ms = parseLifetime(value);
  if (ms === undefined) throw new InvalidArgumentError('must be a whole number followed by m, h, d or w (minutes, hours, days, weeks), e.g. 30d.');
  return ms;
};

/** The scope of a key made by `drover keys create` without `--scope`: the least one that can produce runs. */
export const DEFAULT_CLI_KEY_SCOPE: Scope = 'producer';

/** Builds the `drover` program; each action stores its exit code in `result.code`. */
function buildProgram(io: Io, result: { code: number; json?: boolean }): Command {
  const program = new Command('drover')
    .description('Durable DAG workflows on BullMQ, with state in Postgres')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(result.json
        ? `${JSON.stringify({ error: { code: 'usage_error', message: s.replace(/^error: /, '').trim() } })}\n`
        : `drover: ${s.replace(/^error: /, '')}`),
    })
    .addHelpText('after', environmentHelp());

  /** Runs an action with the config and a logger; any error becomes one line and exit code 1 (2 for usage errors). */
  const action = <A extends unknown[]>(body: (config: DroverConfig, logger: Logger, ...args: A) => Promise<number>) =>
    async (...args: A): Promise<void> => {
      try {
        const config = loadConfig();
        // With --json, stdout carries the JSON alone: log lines go to stderr.
        const logger = (await lazy.logger()).createLogger(config.logLevel, 'drover', undefined, { traceIds: Boolean(config.tracing), stderr: result.json });
        result.code = await body(config, logger, ...args);
      } catch (error) {
        result.code = isUsageError(error) ? 2 : 1;
        // With --json the line is JSON too (on stderr, as the text line would be): the API's error shape.
        io.err(result.json ? JSON.stringify({ error: { code: errorCode(error, result.code), message: describeError(error) } }) : `drover: ${describeError(error)}`);
      }
    };
  /** An action on the CLI's database (embedded or DATABASE_URL) through a Drover. */
  const onDatabase = <A extends unknown[]>(body: (drover: Drover, ...args: A) => Promise<number>, options: { initialise?: boolean } = {}) =>
    action(async (config, logger, ...args: A) => withCliDatabase(config, io, async (url) => {
      // A command that may make the embedded database (keys create) migrates it first, as `npm start` would.
      if (options.initialise && !config.databaseUrl) await (await lazy.migrations()).migrate(url, { queueBackend: config.redisUrl ? 'redis' : 'postgres' });
      return withDrover(config, logger, (drover) => body(drover, ...args), url);
    }, options));

  program.command('start')
    .description('all in one: Postgres (embedded when DATABASE_URL is unset), migrations, API server, Bull Board and a worker')
    .option('-m, --module <path>', 'a module of workflows and processors (CommonJS or ESM: .js, .cjs, .mjs, .ts or .mts) for the worker')
    .option('--json', 'once started, print one line of JSON (the URLs, the worker, the first-start key) instead of the banner')
    .action(action(async (config, logger, opts: { module?: string; json?: boolean }) => {
      const { startAll, StartAborted } = await lazy.start();
      warnAuthOff(config, logger, io);
      // Listening from the start: a signal while starting stops what was started (the embedded Postgres too).
      const stopping = new AbortController();
      void untilSignal(io).then(() => stopping.abort());
      return withTracing(config, 'drover', async (tracing) => {
        try {
          const started = await startAll({ config, logger, module: opts.module, print: (line) => io.out(line), json: opts.json, signal: stopping.signal, tracing });
          if (!stopping.signal.aborted) await new Promise((resolve) => stopping.signal.addEventListener('abort', resolve, { once: true }));
          await started.close();
        } catch (error) {
          if (!(error instanceof StartAborted)) throw error;
        }
        return 0;
      });
    }));

  program.command('server')
    .description('the API server, Bull Board and /health, /ready, /metrics (no worker)')
    .option('--json', 'once listening, print one line of JSON ({"url"}) instead of the line of text')
    .action(action(async (config, logger, opts: { json?: boolean }) => {
      warnAuthOff(config, logger, io);
      const { assertMigrated, startServer } = await lazy.server();
      return withTracing(config, 'drover-server', (tracing) => withDrover(config, logger, async (drover) => {
        await assertMigrated(drover);
        drover.queues.connect(); // an unreachable Redis is reported now, not at the first request
        const server = await startServer({
          drover, auth: config.auth, port: config.port, host: config.host, logger, maxInputBytes: config.maxInputBytes,
          cookieSecure: config.cookieSecure, allowedHosts: config.allowedHosts, authFailuresPerMinute: config.authFailuresPerMinute,
          bullBoard: config.bullBoard, metricsAuth: config.metricsAuth,
        });
        const maintenance = drover.startMaintenance();
        io.out(opts.json ? JSON.stringify({ url: server.url }) : `drover server listening on ${server.url}`);
        logger.info({ url: server.url, queueBackend: drover.queues.kind }, 'server listening');
        await untilSignal(io);
        await server.close();
        await maintenance.stop();
        return 0;
      }, undefined, tracing));
    }));

  program.command('worker')
    .description('a worker: runs the steps of the module\'s workflows')
    .requiredOption('-m, --module <path>', 'the module of workflows and processors (CommonJS or ESM: .js, .cjs, .mjs, .ts or .mts)')
    .option('-q, --queues <a,b>', 'queues to consume (default: every queue the module\'s workflows use)', queueList)
    .option('-c, --concurrency <n>', 'steps run at once per queue', wholeNumber(1, 10_000), 10)
    .option('--metrics-port <port>', 'serve this worker\'s /metrics and /health on this port (on HOST); default: none', wholeNumber(1, 65_535))
    .option('--json', 'once running, print one line of JSON ({"id", "queues", "concurrency", "metrics"}) instead of the line of text')
    .action(action(async (config, logger, opts: { module: string; queues?: string[]; concurrency: number; metricsPort?: number; json?: boolean }) => {
      const mod = await (await lazy.moduleLoader()).loadUserModule(opts.module, { logger });
      const { Metrics } = await lazy.metrics();
      const metrics = new Metrics();
      return withTracing(config, 'drover-worker', async (tracing) => {
        const worker = (await lazy.worker()).createWorker({
          databaseUrl: await databaseUrlOf(config), redisUrl: config.redisUrl, namespace: config.namespace, ...pooling(config),
          module: mod, queues: opts.queues, concurrency: opts.concurrency, logger, metrics, tracing, recordStartAfterMs: config.recordStartAfterMs,
          maxOutputBytes: config.maxOutputBytes, maintenance: { retention: { retentionDays: config.retentionDays } },
        });
        // Listening before the worker connects: the liveness probe answers while it waits for its stores.
        const metricsServer = opts.metricsPort === undefined ? undefined
          : await (await lazy.metricsServer()).startMetricsServer({ metrics, port: opts.metricsPort, host: config.host });
        try {
          await worker.run();
          io.out(opts.json
            ? JSON.stringify({ id: worker.id, queues: worker.queues, concurrency: worker.concurrency, metrics: metricsServer ? `${metricsServer.url}/metrics` : null })
            : `drover worker ${worker.id} consuming ${worker.queues.join(', ')} (concurrency ${worker.concurrency})${metricsServer ? `; metrics on ${metricsServer.url}/metrics` : ''}`);
          await untilSignal(io);
          await worker.close();
        } finally {
          await metricsServer?.close();
        }
        return 0;
      });
    }));

  program.command('migrate')
    .description('applies the database migrations (and BullMQ\'s when the queues live in Postgres)')
    .option('--json', 'print JSON')
    .action(action(async (config, _logger, opts: { json?: boolean }) => withCliDatabase(config, io, async (url) => {
      const { migrate } = await lazy.migrations();
      // A session advisory lock serialises migrations: not through a transaction pooler.
      const applied = await migrate(url === config.databaseUrl ? config.databaseDirectUrl ?? url : url, { queueBackend: config.redisUrl ? 'redis' : 'postgres' });
      if (opts.json) io.out(json({ applied }));
      else io.out(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'the database is up to date');
      return 0;
    }, { initialise: true })));

  const keys = program.command('keys').description('API keys: create, list, revoke');
  keys.command('create')
    .description('makes a new API key and prints it once (only its hash is stored)')
    .requiredOption('-n, --name <name>', 'a name for the key (shown as api:<name> in the audit log)', keyName)
    .option('--scope <scope>', `what the key may do: read, producer (also create, cancel, resume runs) or admin (also Bull Board's changes); default ${DEFAULT_CLI_KEY_SCOPE}`, keyScope)
    .option('--workspace <workspace>', 'limit the key to this workspace\'s runs (repeat for several); a limited key cannot open Bull Board nor /metrics', addWorkspace)
    .option('--expires <lifetime>', 'the key stops working after this long: 90m, 12h, 30d, 2w (default never)', keyLifetime)
    .option('--json', 'print JSON (the key is in "key")')
    .action(onDatabase(async (drover, opts: { name: string; scope?: Scope; workspace?: string[]; expires?: number; json?: boolean }) => {
      const created = await drover.apiKeys.create(opts.name, { scope: opts.scope ?? DEFAULT_CLI_KEY_SCOPE, workspaces: opts.workspace, expiresInMs: opts.expires });
      if (opts.json) {
        io.out(json(created));
      } else {
        io.out(created.key);
        const limits = `scope ${created.scope}, ${created.workspaces ? `workspaces ${created.workspaces.join(', ')}` : 'every workspace'}, ${created.expiresAt ? `expires ${created.expiresAt}` : 'never expires'}`;
        io.err(`created API key "${created.name}" (id ${created.id}, prefix ${created.prefix}; ${limits}); it is shown only now: store it safely`);
      }
      return 0;
    }, { initialise: true }));
  keys.command('list')
    .description('lists the API keys (never their secrets)')
    .option('--json', 'print JSON')
    .action(onDatabase(async (drover, opts: { json?: boolean }) => {
      const items = await drover.apiKeys.list();
      io.out(opts.json ? json(items) : items.length ? keysTable(items) : 'no API keys (make one with: drover keys create --name NAME)');
      return 0;
    }));
  keys.command('revoke')
    .description('revokes a key by its id or prefix (its sessions end too)')
    .argument('<id-or-prefix>', 'the key\'s id (uuid) or prefix')
    .option('--json', 'print JSON')
    .action(onDatabase(async (drover, idOrPrefix: string, opts: { json?: boolean }) => {
      const revoked = await drover.apiKeys.revoke(idOrPrefix);
      if (!revoked) {
        io.err(`drover: no API key with id or prefix "${idOrPrefix}"`);
        return 1;
      }
      io.out(opts.json ? json(revoked) : `revoked API key "${revoked.name}" (id ${revoked.id}, prefix ${revoked.prefix})`);
      return 0;
    }));

  addOperatorCommands(program, { io, onDatabase });
  addScheduleCommands(program, { io, onDatabase, retentionDays: () => loadConfig().retentionDays });

  return program;
}

/**
 * The `drover` command line. Resolves to the process exit code; bad flags,
 * bad JSON and bad configuration give one line on stderr and a non-zero code.
 */
export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const result = { code: 0, json: argv.includes('--json') };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv);
  } catch (error) {
    // Commander's own errors (unknown command or option, a bad or missing argument) are usage errors.
    if (error instanceof CommanderError) result.code = error.exitCode === 0 ? 0 : 2;
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
