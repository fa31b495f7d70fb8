import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { ConfigError } from '../src/errors';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: undefined,
      databaseDirectUrl: undefined,
      preparedStatements: true,
      redisUrl: undefined,
      dataDir: path.resolve('.drover'),
      port: 3000,
      host: '127.0.0.1',
      auth: true,
      logLevel: 'info',
      maxInputBytes: 1024 * 1024,
      namespace: 'drover',
      sessionIdleMs: 8 * 3600_000,
      sessionMaxMs: 7 * 86_400_000,
      cookieSecure: false,
      allowedHosts: [],
      authFailuresPerMinute: 100,
      bullBoard: 'readonly',
      metricsAuth: false,
      recordStartAfterMs: 1000,
      retentionDays: 30,
      maxOutputBytes: 1024 * 1024,
    });
  });

  it('reads DROVER_RECORD_START_AFTER_MS and refuses a bad one with the range', () => {
    expect(loadConfig({ DROVER_RECORD_START_AFTER_MS: '0' }).recordStartAfterMs).toBe(0);
    expect(loadConfig({ DROVER_RECORD_START_AFTER_MS: '250' }).recordStartAfterMs).toBe(250);
    expect(() => loadConfig({ DROVER_RECORD_START_AFTER_MS: '-1' })).toThrow('DROVER_RECORD_START_AFTER_MS must be a whole number from 0 to 3600000 (got "-1")');
    expect(() => loadConfig({ DROVER_RECORD_START_AFTER_MS: '3600001' })).toThrow('DROVER_RECORD_START_AFTER_MS must be a whole number from 0 to 3600000 (got 3600001)');
  });

  it('reads retention and the output bound, refusing values out of range in one line', () => {
    expect(loadConfig({ DROVER_RETENTION_DAYS: '0', DROVER_MAX_OUTPUT_BYTES: '2048' })).toMatchObject({ retentionDays: 0, maxOutputBytes: 2048 });
    expect(() => loadConfig({ DROVER_RETENTION_DAYS: '-1' })).toThrow('DROVER_RETENTION_DAYS must be a whole number from 0 to 36500 (got "-1")');
    expect(() => loadConfig({ DROVER_MAX_OUTPUT_BYTES: '0' })).toThrow('DROVER_MAX_OUTPUT_BYTES must be a whole number from 1 to 268435456 (got 0)');
  });

  it('reads the browser session and host settings', () => {
    expect(loadConfig({
      DROVER_SESSION_IDLE_MS: '60000', DROVER_SESSION_MAX_MS: '3600000', DROVER_COOKIE_SECURE: 'on',
      DROVER_ALLOWED_HOSTS: 'drover.example.com, Proxy.Internal ,[::2]',
    })).toMatchObject({ sessionIdleMs: 60_000, sessionMaxMs: 3_600_000, cookieSecure: true, allowedHosts: ['drover.example.com', 'proxy.internal', '[::2]'] });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@db:5432/x', REDIS_URL: 'redis://cache:6379', DROVER_DATA_DIR: '/var/lib/drover',
      PORT: '8080', HOST: '0.0.0.0', DROVER_AUTH: 'off', LOG_LEVEL: 'debug', DROVER_MAX_INPUT_BYTES: '2048',
      DROVER_BULL_BOARD: 'ReadWrite', DROVER_METRICS_AUTH: 'on',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://u:p@db:5432/x', redisUrl: 'redis://cache:6379', dataDir: '/var/lib/drover',
      port: 8080, host: '0.0.0.0', auth: false, logLevel: 'debug', maxInputBytes: 2048, bullBoard: 'readwrite', metricsAuth: true,
    });
    expect(loadConfig({}).metricsAuth).toBe(false);
  });

  it('reads the PgBouncer settings: the direct URL falls back to DATABASE_URL, prepared statements can be turned off', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@bouncer:6432/x' })).toMatchObject({ databaseDirectUrl: 'postgres://u:p@bouncer:6432/x', preparedStatements: true });
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@bouncer:6432/x', DATABASE_DIRECT_URL: 'postgres://u:p@db:5432/x', DROVER_PREPARED_STATEMENTS: 'off' }))
      .toMatchObject({ databaseUrl: 'postgres://u:p@bouncer:6432/x', databaseDirectUrl: 'postgres://u:p@db:5432/x', preparedStatements: false });
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be a whole number from 0 to 65535 (got "abc")'],
    [{ PORT: '70000' }, 'PORT must be a whole number from 0 to 65535 (got 70000)'],
    [{ PORT: '-1' }, 'PORT must be a whole number'],
    [{ DROVER_AUTH: 'maybe' }, 'DROVER_AUTH must be "on" or "off" (got "maybe")'],
    [{ DROVER_BULL_BOARD: 'rw' }, 'DROVER_BULL_BOARD must be "readonly" or "readwrite" (got "rw")'],
    [{ DROVER_METRICS_AUTH: 'yes' }, 'DROVER_METRICS_AUTH must be "on" or "off" (got "yes")'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL is not a valid URL'],
    [{ DATABASE_URL: 'mysql://db/x' }, 'DATABASE_URL must start with postgres:// or postgresql:// (got mysql://)'],
    [{ REDIS_URL: 'http://cache' }, 'REDIS_URL must start with redis:// or rediss://'],
    [{ DATABASE_URL: 'postgres://db/x', DATABASE_DIRECT_URL: 'redis://db/x' }, 'DATABASE_DIRECT_URL must start with postgres:// or postgresql:// (got redis://)'],
    [{ DATABASE_DIRECT_URL: 'postgres://db/x' }, 'DATABASE_DIRECT_URL needs DATABASE_URL too'],
    [{ DROVER_PREPARED_STATEMENTS: 'no' }, 'DROVER_PREPARED_STATEMENTS must be "on" or "off" (got "no")'],
    [{ HOST: 'bad host!' }, 'HOST must be a host name or IP address'],
    [{ HOST: '999.1.1.1' }, 'HOST must be a host name or IP address (got "999.1.1.1": not an IPv4 address)'],
    [{ DROVER_MAX_INPUT_BYTES: '0' }, 'DROVER_MAX_INPUT_BYTES must be a whole number from 1'],
    [{ DROVER_SESSION_IDLE_MS: '8h' }, 'DROVER_SESSION_IDLE_MS must be a whole number from 1000 to 31536000000 (got "8h")'],
    [{ DROVER_SESSION_MAX_MS: '10' }, 'DROVER_SESSION_MAX_MS must be a whole number from 1000 to 31536000000 (got 10)'],
    [{ DROVER_SESSION_IDLE_MS: '7200000', DROVER_SESSION_MAX_MS: '3600000' }, 'DROVER_SESSION_IDLE_MS (7200000) must not exceed DROVER_SESSION_MAX_MS (3600000)'],
    [{ DROVER_AUTH_FAILURE_LIMIT: 'lots' }, 'DROVER_AUTH_FAILURE_LIMIT must be a whole number from 0 to 1000000 (got "lots")'],
    [{ DROVER_COOKIE_SECURE: 'yes' }, 'DROVER_COOKIE_SECURE must be "on" or "off" (got "yes")'],
    [{ DROVER_ALLOWED_HOSTS: 'https://drover.example.com' }, 'DROVER_ALLOWED_HOSTS must be a comma list of host names without port or scheme (got "https://drover.example.com")'],
    [{ DROVER_ALLOWED_HOSTS: 'proxy:8080' }, 'DROVER_ALLOWED_HOSTS must be a comma list of host names without port or scheme (got "proxy:8080")'],
  ])('rejects %p with one clear line', (env, message) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(message);
    expect((error as Error).message).not.toContain('\n');
  });
});
