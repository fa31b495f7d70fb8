import { Drover } from '../src/drover';
import { DroverClient } from '../src/client/client';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, runCli, spawnDrover, type DroverProcess } from './helpers/server-process';
import { basicAuth, rawRequest, signIn } from './helpers/web';

const HTML = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
const REFUSED = { error: { code: 'forbidden', message: 'cross-site request refused' } };
const PAGE_CSP = "default-src 'self';script-src 'self';style-src 'self';img-src 'self' data:;connect-src 'self';font-src 'self';object-src 'none';base-uri 'none';form-action 'self';frame-ancestors 'none'";

describe('browser security: cross-site requests, body types, headers, Host, secrets in logs', () => {
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
    // No worker serves this workflow: its runs stay pending until cancelled.
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    key = (await drover.apiKeys.create('operator')).key;
    env = cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace, LOG_LEVEL: 'debug' });
    server = await spawnDrover(['server'], env);
  });
  afterAll(async () => {
    const code = await server?.stop();
    await drover?.close();
    expect(code).toBe(0);
  });

  const pendingRun = async () => (await drover.createRun({ workflow: 'one' })).id;

  it('refuses a cross-site form post carrying a saved Basic login (403) and changes nothing', async () => {
    const id = await pendingRun();
    const form = { 'content-type': 'application/x-www-form-urlencoded', authorization: basicAuth(key) };
    const attempts: Record<string, string>[] = [
      { ...form, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      { ...form, origin: 'https://evil.example' }, // an older browser: no Sec-Fetch-Site
      { ...form, 'sec-fetch-site': 'same-site' }, // a sibling subdomain
      { ...form, origin: 'null' }, // a sandboxed frame
    ];
    for (const headers of attempts) {
      for (const action of ['cancel', 'retry']) {
        const res = await http(`${server.url}/api/runs/${id}/${action}`, { method: 'POST', headers, body: 'x=1' });
        expect([action, headers, res.status, res.body]).toEqual([action, headers, 403, REFUSED]);
      }
    }
    // The session cookie does not help a cross-site request either, nor does it on Bull Board or /logout.
    const { cookie } = await signIn(server.url, key);
    const viaCookie = await http(`${server.url}/api/runs/${id}/cancel`, { method: 'POST', json: {}, headers: { cookie: cookie!, origin: 'https://evil.example' } });
    expect([viaCookie.status, viaCookie.body]).toEqual([403, REFUSED]);
    const board = await http(`${server.url}/admin/queues/api/queues/drover-default/pause`, { method: 'PUT', headers: { cookie: cookie!, 'sec-fetch-site': 'cross-site' } });
    expect(board.status).toBe(403);
    expect((await drover.getRun(id)).status).toBe('pending');
    const audit = (await drover.getAudit(id)).items.map((e) => e.type);
    expect(audit).not.toContain('run.cancelled');
    // The same request from the drover page itself (same origin) is served.
    const same = await http(`${server.url}/api/runs/${id}/cancel`, { method: 'POST', json: {}, headers: { cookie: cookie!, origin: server.url, 'sec-fetch-site': 'same-origin' } });
    expect([same.status, same.body.status]).toEqual([200, 'cancelled']);
  });

  it('refuses a text/plain or form-typed write authenticated by Basic or the cookie (415), an empty JSON body means {}', async () => {
    const id = await pendingRun();
    const { cookie } = await signIn(server.url, key);
    for (const auth of [{ authorization: basicAuth(key) }, { cookie: cookie! }] as Record<string, string>[]) {
      for (const [type, body] of [['text/plain', ''], ['text/plain', '{}'], ['application/x-www-form-urlencoded', 'a=b'], [undefined, undefined]] as const) {
        const res = await http(`${server.url}/api/runs/${id}/cancel`, { method: 'POST', headers: { ...auth, ...(type ? { 'content-type': type } : {}) }, body });
        expect([type, res.status, res.body?.error?.code]).toEqual([type, 415, 'unsupported_media_type']);
        expect(res.body.error.message).toBe(`POST /api/runs/${id}/cancel needs Content-Type: application/json (send {} when there is nothing to say)`);
      }
    }
    expect((await drover.getRun(id)).status).toBe('pending');
    const empty = await http(`${server.url}/api/runs/${id}/cancel`, { method: 'POST', headers: { authorization: basicAuth(key), 'content-type': 'application/json' } });
    expect([empty.status, empty.body.status]).toEqual([200, 'cancelled']);
    // An empty JSON body on create means {} and fails validation as such, not as a missing body.
    const create = await http(`${server.url}/api/runs`, { method: 'POST', headers: { cookie: cookie!, 'content-type': 'application/json' } });
    expect([create.status, create.body.error.code]).toEqual([400, 'invalid_request']);
  });

  it('serves Bearer requests from curl and scripts exactly as before (no Origin, any body type)', async () => {
    const bearer = { authorization: `Bearer ${key}` };
    const id = await pendingRun();
    // curl -X POST -H "Authorization: Bearer …" …/cancel: no body, no type.
    const cancel = await http(`${server.url}/api/runs/${id}/cancel`, { method: 'POST', headers: bearer });
    expect([cancel.status, cancel.body.status]).toEqual([200, 'cancelled']);
    const created = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'one' }, headers: bearer });
    expect(created.status).toBe(201);
    // The client (bodiless POSTs send {} as JSON) works with a key and against a server with auth off.
    const client = new DroverClient({ baseUrl: server.url, apiKey: key });
    expect((await client.cancelRun(created.body.id)).status).toBe('cancelled');
    expect((await client.retryRun(created.body.id)).status).toMatch(/^(pending|running)$/);
  });

  it('sends the security headers on /login, /, /admin/queues and the API', async () => {
    const { cookie } = await signIn(server.url, key);
    const common = (path: string, h: Record<string, string[]>) => {
      expect([path, h['x-powered-by']]).toEqual([path, undefined]);
      expect([path, h['x-content-type-options'], h['referrer-policy'], h['x-frame-options']]).toEqual([path, ['nosniff'], ['same-origin'], ['DENY']]);
      expect(h['content-security-policy']).toHaveLength(1);
      expect(h['content-security-policy'][0]).toContain("frame-ancestors 'none'");
      return h['content-security-policy'][0];
    };
    expect(common('/login', (await rawRequest(`${server.url}/login`, { headers: HTML })).headers)).toBe(PAGE_CSP);
    expect(common('/ (signed out)', (await rawRequest(`${server.url}/`, { headers: HTML })).headers)).toBe(PAGE_CSP);
    expect(common('/ (signed in)', (await rawRequest(`${server.url}/`, { headers: { ...HTML, cookie: cookie! } })).headers)).toBe(PAGE_CSP);
    expect(common('/api/runs', (await rawRequest(`${server.url}/api/runs`, { headers: { cookie: cookie! } })).headers)).toBe(PAGE_CSP);
    expect(common('/health', (await rawRequest(`${server.url}/health`)).headers)).toBe(PAGE_CSP);
    const board = await rawRequest(`${server.url}/admin/queues`, { headers: { ...HTML, cookie: cookie! } });
    expect(board.status).toBe(200);
    const boardCsp = common('/admin/queues', board.headers);
    // Bull Board's scripts are its own files: no inline script is allowed, even there.
    expect(boardCsp).toMatch(/(^|;)script-src 'self'(;|$)/);
    expect(boardCsp).toMatch(/(^|;)default-src 'self'(;|$)/);
    const asset = /src="(static\/js\/[^"]+)"/.exec(board.body)![1];
    common('/admin/queues/static', (await rawRequest(`${server.url}/admin/queues/${asset}`, { headers: { cookie: cookie! } })).headers);
  });

  it('with DROVER_AUTH=off serves only loopback Host values (DNS rebinding gets 421), plus DROVER_ALLOWED_HOSTS', async () => {
    const open = await spawnDrover(['server'], { ...env, DROVER_AUTH: 'off', DROVER_ALLOWED_HOSTS: 'drover.proxy.internal', LOG_LEVEL: 'warn' });
    try {
      const port = new URL(open.url).port;
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'localhost', 'drover.proxy.internal', `DROVER.proxy.internal:${port}`]) {
        const res = await rawRequest(`${open.url}/api/runs`, { headers: { host } });
        expect([host, res.status]).toEqual([host, 200]);
      }
      for (const host of [`evil.example:${port}`, 'rebind.attacker.test', `127.0.0.1.evil.example:${port}`, `localhost.evil.example`, '10.0.0.5']) {
        const res = await rawRequest(`${open.url}/api/runs`, { headers: { host } });
        expect([host, res.status]).toEqual([host, 421]);
        expect(JSON.parse(res.body).error).toEqual({
          code: 'misdirected_request',
          message: 'with DROVER_AUTH=off drover serves only loopback hosts (localhost, 127.0.0.1, [::1]); this request named another Host: add it to DROVER_ALLOWED_HOSTS if a proxy forwards it',
        });
      }
      // A rebound page's POST fails too, and so does a plain form post from another site.
      const post = await rawRequest(`${open.url}/api/runs`, { method: 'POST', headers: { host: 'evil.example', 'content-type': 'application/json' }, body: '{"workflow":"one"}' });
      expect(post.status).toBe(421);
      const form = await http(`${open.url}/api/runs`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"workflow":"one"}' });
      expect([form.status, form.body.error.code]).toEqual([415, 'unsupported_media_type']);
      // Nothing to sign in to: /login sends the browser on.
      const login = await http(`${open.url}/login?next=%2Fworkflows`, { headers: HTML });
      expect([login.status, login.headers.get('location')]).toEqual([303, '/workflows']);
      // The client sends JSON even on bodiless POSTs, so it works with auth off.
      const client = new DroverClient({ baseUrl: open.url });
      const run = await client.createRun({ workflow: 'one' });
      expect((await client.cancelRun(run.id)).status).toBe('cancelled');
    } finally {
      expect(await open.stop()).toBe(0);
    }
  });

  it('refuses to start with DROVER_AUTH=off and a non-loopback HOST (one line)', async () => {
    const res = await runCli(['server'], { ...env, DROVER_AUTH: 'off', HOST: '0.0.0.0' });
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n').pop()).toBe(
      'drover: DROVER_AUTH=off serves anyone who can reach it: set HOST to a loopback address (127.0.0.1, ::1, localhost), not 0.0.0.0, or turn auth on');
  });

  it('never writes a key to the log: paths, sign-in and failures are masked, and logged paths are whole', async () => {
    const secret = key.slice(-43);
    const prefix = key.slice(4, 16);
    await http(`${server.url}/api/runs/${key}`, { headers: { authorization: `Bearer ${key}` } });
    await http(`${server.url}/admin/queues/${key}?k=${key}`, { headers: { authorization: basicAuth(key) } });
    await signIn(server.url, key);
    await signIn(server.url, `drv_${prefix}_${'C'.repeat(43)}`);
    await http(`${server.url}/api/runs`, { headers: { authorization: `Bearer drv_${prefix}_${'D'.repeat(43)}` } });
    // Let the last request lines reach stdout.
    await new Promise((r) => setTimeout(r, 200));
    const logs = server.stdout() + server.stderr();
    expect(logs).not.toContain(secret);
    expect(logs).not.toMatch(/drv_[0-9a-f]{12}_[A-Za-z0-9_-]{4}/);
    const lines = logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const paths = lines.filter((l) => l.msg === 'request').map((l) => l.path);
    expect(paths).toContain(`/api/runs/drv_${prefix}_***`);
    expect(paths).toContain(`/admin/queues/drv_${prefix}_***?k=drv_${prefix}_***`);
    expect(paths).toContain('/login');
  });
});
