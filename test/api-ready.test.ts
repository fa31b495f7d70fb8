import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { ApiKeyStore } from '../src/auth/api-keys';
import { migrate } from '../src/db/data-source';
import { Drover } from '../src/drover';
import { EmbeddedPostgres } from '../src/embedded/embedded-postgres';
import { freePort } from '../src/embedded/free-port';
import { databaseUrl as withDatabase } from './harness/services';
import { eventually } from './helpers/engine';
import { uniqueNamespace } from './helpers/env';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';

// A throwaway Postgres of its own: stopping the shared test server would break every other test file.
describe('/ready follows Postgres going away and coming back', () => {
  let dir: string;
  let port: number;
  let postgres: EmbeddedPostgres;
  let url: string;
  let server: DroverProcess | undefined;
  let key: string;

  const start = async () => {
    postgres = new EmbeddedPostgres({ dataDir: path.join(dir, 'pg'), port, fsync: false });
    return postgres.start();
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-ready-'));
    fs.chmodSync(dir, 0o755);
    port = await freePort();
    const admin = new Client({ connectionString: await start() });
    await admin.connect();
    await admin.query('CREATE DATABASE ready');
    await admin.end();
    url = withDatabase(postgres.url, 'ready');
    // No REDIS_URL: the queues live in this Postgres too, so both checks depend on it.
    await migrate(url, { queueBackend: 'postgres' });
    const drover = await Drover.connect({ databaseUrl: url });
    key = (await drover.apiKeys.create('ready')).key;
    await drover.close();
  });
  afterAll(async () => {
    await server?.stop();
    await postgres?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers 200, then 503 with the failed checks while Postgres is down, then 200 again', async () => {
    server = await spawnDrover(['server'], cliEnv({ DATABASE_URL: url, PORT: '0', DROVER_NAMESPACE: uniqueNamespace() }));
    const auth = { authorization: `Bearer ${key}` };
    const ready = await http(`${server.url}/ready`);
    expect([ready.status, ready.body]).toEqual([200, { status: 'ok', checks: { postgres: true, queue: true } }]);
    expect((await http(`${server.url}/api/runs`, { headers: auth })).status).toBe(200);

    await postgres.stop();
    const down = await eventually(async () => {
      const res = await http(`${server!.url}/ready`);
      return res.status === 503 ? res : undefined;
    }, 20_000, '/ready to answer 503');
    expect(down!.body).toEqual({ status: 'unavailable', checks: { postgres: false, queue: false } });
    // Liveness does not depend on Postgres; API calls say "unavailable", not 500.
    expect((await http(`${server.url}/health`)).status).toBe(200);
    const api = await http(`${server.url}/api/runs`, { headers: auth });
    expect([api.status, api.body?.error?.code]).toEqual([503, 'unavailable']);
    expect(api.headers.get('retry-after')).toBe('1');

    await start();
    const back = await eventually(async () => {
      const res = await http(`${server!.url}/ready`);
      return res.status === 200 ? res : undefined;
    }, 30_000, '/ready to answer 200 again');
    expect(back!.body).toEqual({ status: 'ok', checks: { postgres: true, queue: true } });
    expect((await http(`${server.url}/api/runs`, { headers: auth })).status).toBe(200);
    expect(server.child.exitCode).toBeNull();
    expect(await server.stop()).toBe(0);
    server = undefined;
  });
});
