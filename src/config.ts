import * as path from 'node:path';
import { ConfigError } from './errors';

/** The typed configuration of a drover process, read once from the environment. */
export interface DroverConfig {
  /** Postgres connection string; undefined means the embedded Postgres. */
  databaseUrl?: string;
  /** Redis connection string; undefined means BullMQ's PostgreSQL backend. */
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
}

/** The pino log levels accepted in `LOG_LEVEL`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Environment variables this module understands (others are ignored). */
export const CONFIG_VARIABLES = [
  'DATABASE_URL', 'REDIS_URL', 'DROVER_DATA_DIR', 'PORT', 'HOST', 'DROVER_AUTH', 'LOG_LEVEL', 'DROVER_MAX_INPUT_BYTES', 'DROVER_NAMESPACE',
] as const;

/**
 * Reads and validates the configuration. The only place in drover that reads
 * `process.env`. Throws `ConfigError` with one line saying what to fix.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): DroverConfig {
  const get = (name: (typeof CONFIG_VARIABLES)[number]): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  return {
    databaseUrl: parseUrl('DATABASE_URL', get('DATABASE_URL'), ['postgres:', 'postgresql:']),
    redisUrl: parseUrl('REDIS_URL', get('REDIS_URL'), ['redis:', 'rediss:']),
    dataDir: path.resolve(get('DROVER_DATA_DIR') ?? '.drover'),
    port: parseInteger('PORT', get('PORT'), 3000, 0, 65535),
    host: parseHost(get('HOST') ?? '127.0.0.1'),
    auth: parseAuth(get('DROVER_AUTH')),
    logLevel: parseLogLevel(get('LOG_LEVEL')),
    maxInputBytes: parseInteger('DROVER_MAX_INPUT_BYTES', get('DROVER_MAX_INPUT_BYTES'), 1024 * 1024, 1, 64 * 1024 * 1024),
    namespace: parseNamespace(get('DROVER_NAMESPACE')),
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

function parseInteger(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got "${value}")`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max} (got ${value})`);
  return n;
}

function parseHost(value: string): string {
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(value)) throw new ConfigError(`HOST must be a host name or IP address (got "${value}")`);
  return value;
}

function parseAuth(value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.toLowerCase();
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new ConfigError(`DROVER_AUTH must be "on" or "off" (got "${value}")`);
}

function parseNamespace(value: string | undefined): string {
  if (value === undefined) return 'drover';
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(value)) throw new ConfigError(`DROVER_NAMESPACE must match [A-Za-z0-9][A-Za-z0-9_-]{0,31} (got "${value}")`);
  return value;
}

function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined) return 'info';
  const v = value.toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${value}")`);
}
