import { isIPv4 } from 'node:net';
import * as path from 'node:path';
import { ConfigError } from './errors';
import { DAY_MS } from './json';
import { parseTracingConfig, TRACING_VARIABLES, type TracingConfig } from './telemetry/tracing-config';
import { isRedisClusterUrl, parseRedisTarget } from './queue/redis-target';

/** The typed configuration of a drover process, read once from the environment. */
export interface DroverConfig {
  /** Postgres connection string; undefined means the embedded Postgres. */
  databaseUrl?: string;
  /**
   * Postgres that bypasses a transaction pooler, for sessions: migrations (a
   * session advisory lock), the dashboard's LISTEN, BullMQ's PostgreSQL backend.
   * Default `databaseUrl` (`DATABASE_DIRECT_URL`).
   */
  databaseDirectUrl?: string;
  /** Hot statements as named prepared statements. Default true (`DROVER_PREPARED_STATEMENTS=off` behind PgBouncer < 1.21). */
  preparedStatements: boolean;
  /** Redis connection string (`redis+cluster://host:port,…` for a Redis Cluster); undefined means BullMQ's PostgreSQL backend. */
  redisUrl?: string;
  /** Where the embedded Postgres keeps its data. Default `./.drover`. */
  dataDir: string;
  /** HTTP port. Default 3000. */
  port: number;
  /** HTTP listen host. Default `127.0.0.1`. */
  host: string;
  /** Whether API keys are required. Default true (`DROVER_AUTH=on`). */
  auth: boolean;
  /** pino log level. Default `info`. */
  logLevel: LogLevel;
  /** Largest accepted run input, in bytes of JSON. Default 1 MiB (`DROVER_MAX_INPUT_BYTES`). */
  maxInputBytes: number;
  /** Prefix of every queue name, shared by servers and workers. Default `drover` (`DROVER_NAMESPACE`). */
  namespace: string;
  /** A browser session unused this long ends. Default 8 h (`DROVER_SESSION_IDLE_MS`). */
  sessionIdleMs: number;
  /** A browser session ends this long after sign-in. Default 7 days (`DROVER_SESSION_MAX_MS`). */
  sessionMaxMs: number;
  /** Whether the session cookie is marked `Secure` (HTTPS only). Default false (`DROVER_COOKIE_SECURE=on`). */
  cookieSecure: boolean;
  /** Host names served besides loopback ones when auth is off (a proxy's). Default none (`DROVER_ALLOWED_HOSTS`, comma list). */
  allowedHosts: string[];
  /** Failed authentications allowed per client address per minute (then 429); 0 is no limit. Default 100 (`DROVER_AUTH_FAILURE_LIMIT`). */
  authFailuresPerMinute: number;
  /**
   * What Bull Board may do (`DROVER_BULL_BOARD`): `readonly` (default) shows the
   * queues and refuses every change; `readwrite` allows the actions that keep
   * drover's meaning, each audited with the key's name.
   */
  bullBoard: BullBoardMode;
  /** Whether `/metrics` needs a key (any scope, no workspace limit). Default false (`DROVER_METRICS_AUTH=on`). */
  metricsAuth: boolean;
  /** OpenTelemetry tracing, when the standard `OTEL_*` variables turn it on (see `parseTracingConfig`). Default off. */
  tracing?: TracingConfig;
  /** A worker's attempts that end within this many ms write their start with their outcome. Default 1000 (`DROVER_RECORD_START_AFTER_MS`). */
  recordStartAfterMs: number;
  /** Finished runs older than this many days are deleted (0 keeps everything). Default 30 (`DROVER_RETENTION_DAYS`). */
  retentionDays: number;
  /** A step output larger than this many bytes of JSON fails the step without retries. Default 1 MiB (`DROVER_MAX_OUTPUT_BYTES`). */
  maxOutputBytes: number;
}

/** The modes of `DROVER_BULL_BOARD`. */
export const BULL_BOARD_MODES = ['readonly', 'readwrite'] as const;
export type BullBoardMode = (typeof BULL_BOARD_MODES)[number];

/** The pino log levels accepted in `LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Environment variables this module understands (others are ignored). */
export const CONFIG_VARIABLES = [
  'DATABASE_URL', 'DATABASE_DIRECT_URL', 'DROVER_PREPARED_STATEMENTS', 'REDIS_URL', 'DROVER_DATA_DIR', 'PORT', 'HOST', 'DROVER_AUTH', 'LOG_LEVEL', 'DROVER_MAX_INPUT_BYTES', 'DROVER_NAMESPACE',
  'DROVER_SESSION_IDLE_MS', 'DROVER_SESSION_MAX_MS', 'DROVER_COOKIE_SECURE', 'DROVER_ALLOWED_HOSTS',
  'DROVER_AUTH_FAILURE_LIMIT',
  'DROVER_BULL_BOARD', 'DROVER_METRICS_AUTH', 'DROVER_RECORD_START_AFTER_MS',
  ...TRACING_VARIABLES,
  'DROVER_RETENTION_DAYS', 'DROVER_MAX_OUTPUT_BYTES',
] as const;

const HOUR_MS = 3_600_000;

/** What each variable means and its default, for `drover --help` (as README's configuration table says). */
const VARIABLE_HELP: Partial<Record<(typeof CONFIG_VARIABLES)[number], { meaning: string; defaultValue: string }>> = {
  DATABASE_URL: { meaning: 'Postgres (postgres://user:pass@host:port/db)', defaultValue: 'embedded Postgres under DROVER_DATA_DIR' },
  DATABASE_DIRECT_URL: { meaning: 'Postgres bypassing PgBouncer, for migrations, LISTEN/NOTIFY and the Postgres queues', defaultValue: 'DATABASE_URL' },
  DROVER_PREPARED_STATEMENTS: { meaning: '"off": no named prepared statements (PgBouncer transaction pooling before 1.21)', defaultValue: 'on' },
  REDIS_URL: { meaning: 'Redis for the BullMQ queues (redis://host:port; a Redis Cluster: redis+cluster://host:port,host:port)', defaultValue: 'unset (the queues live in Postgres, BullMQ\'s PostgreSQL backend)' },
  DROVER_DATA_DIR: { meaning: 'where the embedded Postgres keeps its data', defaultValue: './.drover' },
  PORT: { meaning: 'HTTP listen port', defaultValue: '3000' },
  HOST: { meaning: 'HTTP listen address', defaultValue: '127.0.0.1' },
  DROVER_AUTH: { meaning: '"on" or "off" (off: no API key needed, local development only)', defaultValue: 'on' },
  LOG_LEVEL: { meaning: `pino log level (${LOG_LEVELS.join(', ')})`, defaultValue: 'info' },
  DROVER_MAX_INPUT_BYTES: { meaning: 'largest accepted run input, in bytes of JSON', defaultValue: '1048576 (1 MiB)' },
  DROVER_NAMESPACE: { meaning: 'prefix of every queue name, shared by servers and workers', defaultValue: 'drover' },
  DROVER_SESSION_IDLE_MS: { meaning: 'a browser session ends after this long without a request', defaultValue: '28800000 (8 h)' },
  DROVER_SESSION_MAX_MS: { meaning: 'a browser session ends this long after sign-in, whatever its use', defaultValue: '604800000 (7 days)' },
  DROVER_COOKIE_SECURE: { meaning: '"on": the session cookie is Secure (HTTPS only) and HSTS is sent', defaultValue: 'off' },
  DROVER_ALLOWED_HOSTS: { meaning: 'extra Host header values served (comma list; for proxies)', defaultValue: 'loopback names only when DROVER_AUTH=off' },
  DROVER_AUTH_FAILURE_LIMIT: { meaning: 'failed authentications allowed per client address per minute', defaultValue: '100' },
  DROVER_BULL_BOARD: { meaning: '"readonly" or "readwrite" (Bull Board\'s actions, each audited)', defaultValue: 'readonly' },
  DROVER_METRICS_AUTH: { meaning: '"on": /metrics needs an API key (any scope, not limited to workspaces)', defaultValue: 'off' },
  OTEL_TRACES_EXPORTER: { meaning: 'OpenTelemetry trace exporter: otlp, console or none (docs/deploy.md, Tracing)', defaultValue: 'none (otlp when an OTLP endpoint is set)' },
  OTEL_EXPORTER_OTLP_ENDPOINT: { meaning: 'OTLP/HTTP collector (http/json), e.g. http://collector:4318; setting it turns tracing on', defaultValue: 'unset (tracing off)' },
  OTEL_SERVICE_NAME: { meaning: 'service.name of the spans', defaultValue: 'drover-server, drover-worker or drover (start)' },
  OTEL_SDK_DISABLED: { meaning: '"true": tracing off, whatever else is set', defaultValue: 'false' },
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: { meaning: 'OTLP/HTTP URL for traces only (wins over OTEL_EXPORTER_OTLP_ENDPOINT)', defaultValue: 'unset' },
  OTEL_EXPORTER_OTLP_PROTOCOL: { meaning: 'only http/json is supported', defaultValue: 'http/json' },
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: { meaning: 'as OTEL_EXPORTER_OTLP_PROTOCOL, for traces', defaultValue: 'http/json' },
  OTEL_TRACES_SAMPLER: { meaning: 'always_on, always_off, traceidratio or parentbased_ of those', defaultValue: 'parentbased_always_on' },
  OTEL_TRACES_SAMPLER_ARG: { meaning: 'the ratio (0 to 1) of the traceidratio samplers', defaultValue: '1' },
  DROVER_RECORD_START_AFTER_MS: { meaning: 'a worker writes an attempt `running` once it has run this long; a quicker one writes its start with its outcome (0: always at once)', defaultValue: '1000' },
  DROVER_RETENTION_DAYS: { meaning: 'finished runs older than this many days are deleted with their steps, logs and audit events (0 keeps everything)', defaultValue: '30' },
  DROVER_MAX_OUTPUT_BYTES: { meaning: 'a step output larger than this many bytes of JSON fails the step without retries', defaultValue: '1048576 (1 MiB)' },
};

/** Every environment variable drover reads, with its meaning and default (for `drover --help`). */
export const CONFIG_HELP: ReadonlyArray<{ name: string; meaning: string; defaultValue: string }> = CONFIG_VARIABLES.map((name) => ({
  name, ...(VARIABLE_HELP[name] ?? { meaning: 'see README, Configuration', defaultValue: '-' }),
}));

/**
 * Reads and validates the configuration. The only place in drover that reads
 * `process.env`. Throws `ConfigError` with one line saying what to fix.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): DroverConfig {
  const get = (name: (typeof CONFIG_VARIABLES)[number]): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const sessionIdleMs = parseInteger('DROVER_SESSION_IDLE_MS', get('DROVER_SESSION_IDLE_MS'), 8 * HOUR_MS, 1000, 365 * DAY_MS);
  const sessionMaxMs = parseInteger('DROVER_SESSION_MAX_MS', get('DROVER_SESSION_MAX_MS'), 7 * DAY_MS, 1000, 365 * DAY_MS);
  if (sessionIdleMs > sessionMaxMs) {
    throw new ConfigError(`DROVER_SESSION_IDLE_MS (${sessionIdleMs}) must not exceed DROVER_SESSION_MAX_MS (${sessionMaxMs})`);
  }
  const databaseUrl = parseUrl('DATABASE_URL', get('DATABASE_URL'), ['postgres:', 'postgresql:']);
  const databaseDirectUrl = parseUrl('DATABASE_DIRECT_URL', get('DATABASE_DIRECT_URL'), ['postgres:', 'postgresql:']);
  if (databaseDirectUrl && !databaseUrl) throw new ConfigError('DATABASE_DIRECT_URL needs DATABASE_URL too (the embedded Postgres has no pooler to bypass)');
  return {
    databaseUrl,
    databaseDirectUrl: databaseDirectUrl ?? databaseUrl,
    preparedStatements: parseOnOff('DROVER_PREPARED_STATEMENTS', get('DROVER_PREPARED_STATEMENTS'), true),
    redisUrl: parseRedisUrl(get('REDIS_URL')),
    dataDir: path.resolve(get('DROVER_DATA_DIR') ?? '.drover'),
    port: parseInteger('PORT', get('PORT'), 3000, 0, 65535),
    host: parseHost(get('HOST') ?? '127.0.0.1'),
    auth: parseAuth(get('DROVER_AUTH')),
    logLevel: parseLogLevel(get('LOG_LEVEL')),
    maxInputBytes: parseInteger('DROVER_MAX_INPUT_BYTES', get('DROVER_MAX_INPUT_BYTES'), 1024 * 1024, 1, 64 * 1024 * 1024),
    namespace: parseNamespace(get('DROVER_NAMESPACE')),
    sessionIdleMs,
    sessionMaxMs,
    cookieSecure: parseOnOff('DROVER_COOKIE_SECURE', get('DROVER_COOKIE_SECURE'), false),
    allowedHosts: parseAllowedHosts(get('DROVER_ALLOWED_HOSTS')),
    authFailuresPerMinute: parseInteger('DROVER_AUTH_FAILURE_LIMIT', get('DROVER_AUTH_FAILURE_LIMIT'), 100, 0, 1_000_000),
    bullBoard: parseBullBoardMode(get('DROVER_BULL_BOARD')),
    metricsAuth: parseOnOff('DROVER_METRICS_AUTH', get('DROVER_METRICS_AUTH'), false),
    tracing: parseTracingConfig(get),
    recordStartAfterMs: parseInteger('DROVER_RECORD_START_AFTER_MS', get('DROVER_RECORD_START_AFTER_MS'), 1000, 0, 3_600_000),
    retentionDays: parseInteger('DROVER_RETENTION_DAYS', get('DROVER_RETENTION_DAYS'), 30, 0, 36_500),
    maxOutputBytes: parseInteger('DROVER_MAX_OUTPUT_BYTES', get('DROVER_MAX_OUTPUT_BYTES'), 1024 * 1024, 1, 256 * 1024 * 1024),
  };
}

function parseUrl(name: string, value: string | undefined, protocols: string[]): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL (expected ${protocols[0]}//host:port/...)`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')} (got ${url.protocol}//)`);
  }
  if (!url.hostname) throw new ConfigError(`${name} has no host name`);
  return value;
}

function parseRedisUrl(value: string | undefined): string | undefined {
  if (value === undefined || !isRedisClusterUrl(value)) return parseUrl('REDIS_URL', value, ['redis:', 'rediss:', 'redis+cluster:', 'rediss+cluster:']);
  try {
    parseRedisTarget(value);
  } catch (error) {
    throw new ConfigError(`REDIS_URL: ${(error as Error).message}`);
  }
  return value;
}

function parseInteger(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got "${value}")`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got ${value})`);
  return n;
}

function parseHost(value: string): string {
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(value)) throw new ConfigError(`HOST must be a host name or IP address (got "${value}")`);
  // All digits and dots: an IPv4 address or nothing (999.1.1.1 is no host name either).
  if (/^[0-9.]+$/.test(value) && !isIPv4(value)) throw new ConfigError(`HOST must be a host name or IP address (got "${value}": not an IPv4 address)`);
  return value;
}

function parseAuth(value: string | undefined): boolean {
  return parseOnOff('DROVER_AUTH', value, true);
}

function parseOnOff(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  const v = value.toLowerCase();
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new ConfigError(`${name} must be "on" or "off" (got "${value}")`);
}

function parseAllowedHosts(value: string | undefined): string[] {
  if (value === undefined) return [];
  const hosts = value.split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== '');
  for (const host of hosts) {
    if (!/^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)$/.test(host)) {
      throw new ConfigError(`DROVER_ALLOWED_HOSTS must be a comma list of host names without port or scheme (got "${host}")`);
    }
  }
  return hosts;
}

function parseNamespace(value: string | undefined): string {
  if (value === undefined) return 'drover';
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(value)) throw new ConfigError(`DROVER_NAMESPACE must match [A-Za-z0-9][A-Za-z0-9_-]{0,31} (got "${value}")`);
  return value;
}

function parseBullBoardMode(value: string | undefined): BullBoardMode {
  if (value === undefined) return 'readonly';
  const v = value.toLowerCase();
  if ((BULL_BOARD_MODES as readonly string[]).includes(v)) return v as BullBoardMode;
  throw new ConfigError(`DROVER_BULL_BOARD must be "readonly" or "readwrite" (got "${value}")`);
}

function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined) return 'info';
  const v = value.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${value}")`);
}
