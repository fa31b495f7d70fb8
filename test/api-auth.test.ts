import { createHash } from 'node:crypto';
import { Client } from 'pg';
import { Drover } from '../src/drover';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, runCli, spawnDrover, type DroverProcess } from './helpers/server-process';

const PROTECTED = ['/api/runs', '/api/workflows', '/api/runs/00000000-0000-4000-8000-000000000000', '/admin/queues', '/admin/queues/api/queues', '/'];

describe('API keys and authentication', () => {
  let databaseUrl: string;
  let namespace: string;
  let drover: Drover;
  let server: DroverProcess;
  let env: NodeJS.ProcessEnv;
  let key: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    env = cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace, LOG_LEVEL: 'debug' });
    const created = await runCli(['keys', 'create', '--name', 'ops team'], env);
    expect(created.code).toBe(0);
    key = created.stdout.trim();
    expect(key).toMatch(/^drv_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown only now/);
    server = await spawnDrover(['server'], env);
  });
  afterAll(async () => {
    const code = await server?.stop();
    await drover?.close();
    expect(code).toBe(0);
  });

  const expect401 = async (path: string, headers: Record<string, string>) => {
    const res = await http(`${server.url}${path}`, { headers });
    expect([path, res.status, res.body?.error?.code]).toEqual([path, 401, 'unauthorized']);
    // Basic first (Chromium reads only a line's first challenge); test/browser-sign-in.test.ts checks they are two headers.
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="drover", Bearer realm="drover"');
  };

  it('answers 401 with a challenge without a key, with a wrong key and with a malformed header', async () => {
    const wrong = `drv_${key.slice(4, 16)}_${'A'.repeat(43)}`;
    const unknownPrefix = `drv_000000000000_${key.slice(-43)}`;
    for (const path of PROTECTED) {
      await expect401(path, {});
      await expect401(path, { authorization: `Bearer ${wrong}` });
      await expect401(path, { authorization: `Bearer ${unknownPrefix}` });
      await expect401(path, { authorization: 'Bearer' });
      await expect401(path, { authorization: `Token ${key}` });
      await expect401(path, { authorization: `Basic ${Buffer.from(`user:${wrong}`).toString('base64')}` });
      await expect401(path, { authorization: `Basic ${Buffer.from(key).toString('base64')}` });
    }
    // A POST without a key is refused before its body is read or acted on.
    const post = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'one' } });
    expect(post.status).toBe(401);
    expect((await drover.listRuns()).items).toHaveLength(0);
  });

  it('accepts the key as a Bearer token and as the password of HTTP Basic', async () => {
    for (const path of PROTECTED.slice(0, 2)) {
      expect((await http(`${server.url}${path}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    }
    const basic = { authorization: `Basic ${Buffer.from(`anyone:${key}`).toString('base64')}` };
    expect((await http(`${server.url}/admin/queues`, { headers: basic })).status).toBe(200);
    expect((await http(`${server.url}/`, { headers: basic })).status).toBe(200);
    const created = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'one' }, headers: { authorization: `bearer ${key}` } });
    expect(created.status).toBe(201);
    const audit = await drover.getAudit(created.body.id);
    expect(audit.items[0].actor).toBe('api:ops team');
  });

  it('serves /health, /ready and /metrics without a key', async () => {
    for (const path of ['/health', '/ready', '/metrics']) expect((await http(`${server.url}${path}`)).status).toBe(200);
  });

  it('stores only a hash, never the key: not in the database, not in the logs, not in keys list', async () => {
    const db = new Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const rows = (await db.query('SELECT id, name, prefix, hash FROM drover.api_keys')).rows;
      expect(rows).toHaveLength(1);
      expect(rows[0].hash).toBe(createHash('sha256').update(key).digest('hex'));
      const secret = key.slice(-43);
      // Every text column of every drover table, cast to text, holds neither the key nor its secret part.
      const tables = (await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'drover'`)).rows;
      for (const { table_name } of tables) {
        const hits = await db.query(`SELECT count(*)::int AS n FROM drover.${table_name} t WHERE t::text LIKE '%' || $1 || '%'`, [secret]);
        expect([table_name, hits.rows[0].n]).toEqual([table_name, 0]);
      }
    } finally {
      await db.end();
    }
    const list = await runCli(['keys', 'list', '--json'], env);
    expect(list.code).toBe(0);
    const keys = JSON.parse(list.stdout);
    expect(keys).toEqual([expect.objectContaining({ name: 'ops team', prefix: key.slice(4, 16), revokedAt: null })]);
    expect(list.stdout).not.toContain(key.slice(-43));
    expect(server.stdout() + server.stderr()).not.toContain(key.slice(-43));
    // The debug request log is there (so the check above looked at real logs).
    expect(server.stdout()).toMatch(/"msg":"request"/);
  });

  it('refuses a revoked key on every protected path', async () => {
    const second = (await runCli(['keys', 'create', '--name', 'temp'], env)).stdout.trim();
    expect((await http(`${server.url}/api/runs`, { headers: { authorization: `Bearer ${second}` } })).status).toBe(200);
    const revoked = await runCli(['keys', 'revoke', second.slice(4, 16)], env);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toMatch(/revoked API key "temp"/);
    for (const path of PROTECTED) await expect401(path, { authorization: `Bearer ${second}` });
    // The first key still works; revoking an unknown key is an error.
    expect((await http(`${server.url}/api/runs`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    const missing = await runCli(['keys', 'revoke', '00000000-0000-4000-8000-000000000000'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toBe('drover: no API key with id or prefix "00000000-0000-4000-8000-000000000000"');
  });

  it('with DROVER_AUTH=off serves without a key, says so loudly, and audits api:anonymous', async () => {
    const open = await spawnDrover(['server'], { ...env, DROVER_AUTH: 'off', LOG_LEVEL: 'info' });
    try {
      expect(open.stderr()).toMatch(/WARNING: DROVER_AUTH=off/);
      const created = await http(`${open.url}/api/runs`, { method: 'POST', json: { workflow: 'one' } });
      expect(created.status).toBe(201);
      expect((await drover.getAudit(created.body.id)).items[0].actor).toBe('api:anonymous');
      expect((await http(`${open.url}/admin/queues`)).status).toBe(200);
    } finally {
      expect(await open.stop()).toBe(0);
    }
  });
});
