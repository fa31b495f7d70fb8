import * as path from 'node:path';
import { loadConfig } from '../src/config';
import { ConfigError } from '../src/errors';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: undefined,
      redisUrl: undefined,
      dataDir: path.resolve('.drover'),
      port: 3000,
      host: '127.0.0.1',
      auth: true,
      logLevel: 'info',
      maxInputBytes: 1024 * 1024,
      namespace: 'drover',
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@db:5432/x', REDIS_URL: 'redis://cache:6379', DROVER_DATA_DIR: '/var/lib/drover',
      PORT: '8080', HOST: '0.0.0.0', DROVER_AUTH: 'off', LOG_LEVEL: 'debug', DROVER_MAX_INPUT_BYTES: '2048',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://u:p@db:5432/x', redisUrl: 'redis://cache:6379', dataDir: '/var/lib/drover',
      port: 8080, host: '0.0.0.0', auth: false, logLevel: 'debug', maxInputBytes: 2048,
    });
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be a whole number from 0 to 65535 (got "abc")'],
    [{ PORT: '70000' }, 'PORT must be a whole number from 0 to 65535 (got 70000)'],
    [{ PORT: '-1' }, 'PORT must be a whole number'],
    [{ DROVER_AUTH: 'maybe' }, 'DROVER_AUTH must be "on" or "off" (got "maybe")'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "loud")'],
    [{ DATABASE_URL: 'not a url' }, 'DATABASE_URL is not a valid URL'],
    [{ DATABASE_URL: 'mysql://db/x' }, 'DATABASE_URL must start with postgres:// or postgresql:// (got mysql://)'],
    [{ REDIS_URL: 'http://cache' }, 'REDIS_URL must start with redis:// or rediss://'],
    [{ HOST: 'bad host!' }, 'HOST must be a host name or IP address'],
    [{ DROVER_MAX_INPUT_BYTES: '0' }, 'DROVER_MAX_INPUT_BYTES must be a whole number from 1'],
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
