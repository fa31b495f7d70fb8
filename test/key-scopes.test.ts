import { Client } from 'pg';
import { Drover } from '../src/drover';
import { eventually } from './helpers/engine';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, runCli, spawnDrover, type DroverProcess } from './helpers/server-process';
import { signIn } from './helpers/web';

/** Scopes (read, producer, admin) and workspace limits of API keys, over HTTP against `drover server`. */
describe('API key scopes and workspaces', () => {
  let databaseUrl: string;
  let namespace: string;
  let drover: Drover;
  let db: Client;
  let server: DroverProcess;
  let env: NodeJS.ProcessEnv;

  /** Makes a key with `drover keys create` and these flags; returns its secret. */
  const makeKey = async (name: string, ...flags: string[]): Promise<string> => {
    const created = await runCli(['keys', 'create', '--name', name, ...flags], env);
    expect([created.code, created.stderr]).toEqual([0, expect.stringMatching(/shown only now/)]);
    return created.stdout.trim();
  };
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  const get = (key: string, path: string) => http(`${server.url}${path}`, { headers: bearer(key) });
  const post = (key: string, path: string, json: unknown = {}) => http(`${server.url}${path}`, { method: 'POST', json, headers: bearer(key) });
  const boardQueue = () => `/admin/queues/api/queues/${encodeURIComponent(`${namespace}.default`)}`;
  const put = (key: string, path: string) => http(`${server.url}${path}`, { method: 'PUT', headers: bearer(key) });

  let readKey: string;
  let producerKey: string;
  let adminKey: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    db = new Client({ connectionString: databaseUrl });
    await db.connect();
    env = cliEnv({
      DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace,
      DROVER_BULL_BOARD: 'readwrite', DROVER_METRICS_AUTH: 'on',
    });
    [readKey, producerKey, adminKey] = await Promise.all([
      makeKey('reader', '--scope', 'read'), makeKey('producer'), makeKey('admin', '--scope', 'admin'),
    ]);
    server = await spawnDrover(['server'], env);
  });
  afterAll(async () => {
    const code = await server?.stop();
    await db?.end();
    await drover?.close();
    expect(code).toBe(0);
  });

  const expectForbidden = (res: { status: number; body: any }, message: RegExp) => {
    expect([res.status, res.body?.error?.code]).toEqual([403, 'forbidden']);
    expect(res.body.error.message).toMatch(message);
  };

  it('read reads but cannot create, cancel, resume, batch or write Bull Board', async () => {
    const run = await drover.createRun({ workflow: 'one' });
    for (const path of ['/api/runs', `/api/runs/${run.id}`, `/api/runs/${run.id}/audit`, '/api/workflows', '/api/workers', '/admin/queues', '/admin/queues/api/queues']) {
      expect([path, (await get(readKey, path)).status]).toEqual([path, 200]);
    }
    expectForbidden(await post(readKey, '/api/runs', { workflow: 'one' }), /^this key's scope \(read\) cannot create runs: that needs a key of scope producer or above$/);
    expectForbidden(await post(readKey, '/api/runs/batch', { runs: [{ workflow: 'one' }] }), /scope \(read\) cannot create runs/);
    expectForbidden(await post(readKey, `/api/runs/${run.id}/cancel`), /scope \(read\) cannot cancel runs/);
    expectForbidden(await post(readKey, `/api/runs/${run.id}/retry`), /scope \(read\) cannot resume runs/);
    expectForbidden(await put(readKey, `${boardQueue()}/pause`), /scope \(read\) cannot change queues or jobs in Bull Board: that needs a key of scope admin/);
    expect((await drover.getRun(run.id)).status).toBe('pending');
    expect((await drover.listRuns()).items).toHaveLength(1);
  });

  it('producer (the default of keys create) creates, cancels and resumes, but cannot write Bull Board', async () => {
    const created = await post(producerKey, '/api/runs', { workflow: 'one' });
    expect(created.status).toBe(201);
    expect((await post(producerKey, '/api/runs/batch', { runs: [{ workflow: 'one' }] })).body.created).toBe(1);
    expect((await post(producerKey, `/api/runs/${created.body.id}/cancel`)).body.status).toBe('cancelled');
    // A cancelled run can be resumed.
    expect((await post(producerKey, `/api/runs/${created.body.id}/retry`)).status).toBe(200);
    expect((await get(producerKey, '/admin/queues')).status).toBe(200);
    expectForbidden(await put(producerKey, `${boardQueue()}/pause`), /scope \(producer\) cannot change queues or jobs in Bull Board/);
    expect((await drover.getAudit(created.body.id)).items.map((e) => e.actor)).toContain('api:producer');
  });

  it('admin also writes Bull Board (audited with its name)', async () => {
    expect((await put(adminKey, `${boardQueue()}/pause`)).status).toBe(200);
    expect((await put(adminKey, `${boardQueue()}/resume`)).status).toBe(200);
    // Queue actions are audited once Bull Board has answered (see bull-board-actions.ts), so the events may land just after.
    const events = (await eventually(async () => {
      const list = await drover.listQueueEvents();
      return list.some((e) => e.type === 'queue.resumed') ? list : undefined;
    }, 5000, 'the queue events'))!;
    expect(events.slice(0, 2).map((e) => [e.type, e.actor])).toEqual([['queue.resumed', 'api:admin'], ['queue.paused', 'api:admin']]);
    expect((await post(adminKey, '/api/runs', { workflow: 'one' })).status).toBe(201);
  });

  it('a workspace-limited key sees and acts on its workspaces only, without learning of the others', async () => {
    const acmeKey = await makeKey('acme app', '--workspace', 'acme');
    const mine = await drover.createRun({ workflow: 'one', workspace: 'acme' });
    const theirs = await drover.createRun({ workflow: 'one', workspace: 'globex' });

    const listed = await get(acmeKey, '/api/runs?limit=100');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((r: any) => r.id)).toEqual([mine.id]);
    // Another workspace answers as an empty one would, whether it exists or not.
    for (const ws of ['globex', 'nosuch']) expect((await get(acmeKey, `/api/runs?workspace=${ws}`)).body).toEqual({ items: [], nextCursor: null });
    expect((await get(acmeKey, '/api/runs?workspace=acme')).body.items.map((r: any) => r.id)).toEqual([mine.id]);
    expect((await get(acmeKey, '/api/runs?limit=1000')).status).toBe(400);

    const missing = await get(acmeKey, '/api/runs/00000000-0000-4000-8000-000000000000');
    for (const path of [`/api/runs/${theirs.id}`, `/api/runs/${theirs.id}/audit`]) {
      const res = await get(acmeKey, path);
      expect([res.status, res.body]).toEqual([404, missing.body]);
    }
    expect((await post(acmeKey, `/api/runs/${theirs.id}/cancel`)).body).toEqual(missing.body);
    expect((await post(acmeKey, `/api/runs/${theirs.id}/retry`)).status).toBe(404);
    expect((await drover.getRun(theirs.id)).status).toBe('pending');
    expect((await get(acmeKey, `/api/runs/${mine.id}`)).body.workspace).toBe('acme');
    expect((await get(acmeKey, `/api/runs/${mine.id}/audit`)).status).toBe(200);
    expect((await post(acmeKey, `/api/runs/${mine.id}/cancel`)).body.status).toBe('cancelled');

    // Creates: no workspace → its own; another → 403; a batch with one outside creates nothing.
    const made = await post(acmeKey, '/api/runs', { workflow: 'one' });
    expect([made.status, made.body.workspace]).toEqual([201, 'acme']);
    expectForbidden(await post(acmeKey, '/api/runs', { workflow: 'one', workspace: 'globex' }), /cannot create runs in workspace "globex" \(it is limited to acme\)/);
    const before = (await drover.listRuns({ limit: 100 })).items.length;
    expectForbidden(await post(acmeKey, '/api/runs/batch', { runs: [{ workflow: 'one' }, { workflow: 'one', workspace: 'globex' }] }), /^runs\[1\]: this key cannot create runs in workspace "globex"/);
    expect((await drover.listRuns({ limit: 100 })).items).toHaveLength(before);
    const batch = await post(acmeKey, '/api/runs/batch', { runs: [{ workflow: 'one' }, { workflow: 'one', workspace: 'acme' }] });
    expect(batch.body.created).toBe(2);
    for (const item of batch.body.items) expect((await drover.getRun(item.id)).workspace).toBe('acme');

    // Bull Board and /metrics show every workspace: a limited key may not open them.
    expectForbidden(await get(acmeKey, '/admin/queues'), /limited to workspaces \(acme\) and cannot open Bull Board, which shows every workspace/);
    expectForbidden(await get(acmeKey, '/admin/queues/api/queues'), /cannot open Bull Board/);
    expectForbidden(await get(acmeKey, '/metrics'), /cannot read metrics/);
  });

  it('a key of several workspaces names one when creating, unless default is one of them', async () => {
    const two = await makeKey('two', '--workspace', 'a', '--workspace', 'b');
    expectForbidden(await post(two, '/api/runs', { workflow: 'one' }), /limited to workspaces a, b: name one of them in "workspace"/);
    expect((await post(two, '/api/runs', { workflow: 'one', workspace: 'b' })).body.workspace).toBe('b');
    const withDefault = await makeKey('with default', '--workspace', 'default', '--workspace', 'b');
    expect((await post(withDefault, '/api/runs', { workflow: 'one' })).body.workspace).toBe('default');
  });

  it('an expired key is refused like a revoked one, for Bearer and for its session', async () => {
    const key = await makeKey('short', '--expires', '30d', '--scope', 'read');
    expect((await get(key, '/api/runs')).status).toBe(200);
    const session = await signIn(server.url, key);
    expect(session.status).toBe(303);
    const withCookie = { headers: { cookie: session.cookie! } };
    expect((await http(`${server.url}/api/runs`, withCookie)).status).toBe(200);

    await db.query(`UPDATE drover.api_keys SET expires_at = now() - interval '1 second' WHERE prefix = $1`, [key.slice(4, 16)]);
    const refused = await get(key, '/api/runs');
    expect([refused.status, refused.body.error.code]).toEqual([401, 'unauthorized']);
    expect(refused.body.error.message).toMatch(/^the API key expired at \d{4}-\d\d-\d\dT[\d:.]+Z: make a new one with drover keys create$/);
    const ended = await http(`${server.url}/api/runs`, withCookie);
    expect([ended.status, ended.body.error.message]).toEqual([401, expect.stringMatching(/session has ended .*expired/)]);
    const again = await signIn(server.url, key);
    expect([again.status, again.cookie]).toEqual([401, undefined]);
    expect(again.text).toContain('That API key has expired.');
  });

  it('keys list shows scope, workspaces and expiry, as a table and as JSON', async () => {
    const listed = await runCli(['keys', 'list', '--json'], env);
    const items = JSON.parse(listed.stdout) as any[];
    const byName = (name: string) => items.find((k) => k.name === name);
    expect(byName('reader')).toMatchObject({ scope: 'read', workspaces: null, expiresAt: null });
    expect(byName('producer')).toMatchObject({ scope: 'producer', workspaces: null, expiresAt: null });
    expect(byName('two')).toMatchObject({ scope: 'producer', workspaces: ['a', 'b'] });
    const created = await runCli(['keys', 'create', '--name', 'dated', '--expires', '2w', '--json'], env);
    const dated = JSON.parse(created.stdout);
    const days = (new Date(dated.expiresAt).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(13.9);
    expect(days).toBeLessThan(14.1);

    const table = (await runCli(['keys', 'list'], env)).stdout.split('\n');
    expect(table[0]).toMatch(/^ID\s+PREFIX\s+NAME\s+SCOPE\s+WORKSPACES\s+EXPIRES\s+CREATED/);
    expect(table.find((l) => l.includes(' two '))).toMatch(/\bproducer\s+a,b\s/);
    expect(table.find((l) => l.includes(' reader '))).toMatch(/\bread\s+\*\s/);
    expect(table.find((l) => l.includes(' dated '))).toContain(dated.expiresAt);
  });

  it('refuses bad --scope, --workspace and --expires with one line and exit code 2', async () => {
    for (const [flags, message] of [
      [['--expires', '3x'], /option '--expires <lifetime>' argument '3x' is invalid\. must be a whole number followed by m, h, d or w/],
      [['--expires', '0d'], /argument '0d' is invalid/],
      [['--scope', 'owner'], /option '--scope <scope>' argument 'owner' is invalid\. must be one of read, producer, admin\./],
      [['--workspace', 'no spaces'], /option '--workspace <workspace>' argument 'no spaces' is invalid\. must be a workspace name/],
    ] as const) {
      const res = await runCli(['keys', 'create', '--name', 'bad', ...flags], env);
      expect([flags, res.code, res.stdout]).toEqual([flags, 2, '']);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(res.stderr).toMatch(message);
    }
    expect(JSON.parse((await runCli(['keys', 'list', '--json'], env)).stdout).some((k: any) => k.name === 'bad')).toBe(false);
  });

  it('with DROVER_METRICS_AUTH=on, /metrics needs a key of any scope; /health and /ready stay open', async () => {
    const open = await http(`${server.url}/metrics`);
    expect([open.status, open.body?.error?.code]).toEqual([401, 'unauthorized']);
    for (const key of [readKey, producerKey, adminKey]) {
      const res = await get(key, '/metrics');
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/^drover_runs_created_total /m);
    }
    expect((await http(`${server.url}/health`)).status).toBe(200);
    expect((await http(`${server.url}/ready`)).status).toBe(200);
  });
});
