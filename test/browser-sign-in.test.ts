import { Client } from 'pg';
import { Drover } from '../src/drover';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';
import { rawRequest, signIn } from './helpers/web';

const HTML = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

describe('browser sign-in: /login, the session cookie, /logout, expiry', () => {
  let databaseUrl: string;
  let drover: Drover;
  let server: DroverProcess;
  let db: Client;
  let key: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    key = (await drover.apiKeys.create('operator')).key;
    db = new Client({ connectionString: databaseUrl });
    await db.connect();
    server = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace,
      DROVER_SESSION_IDLE_MS: String(3_600_000), DROVER_SESSION_MAX_MS: String(86_400_000),
    }));
  });
  afterAll(async () => {
    const code = await server?.stop();
    await db?.end();
    await drover?.close();
    expect(code).toBe(0);
  });

  const withCookie = (cookie: string | undefined, extra: Record<string, string> = {}) => ({ headers: { cookie: cookie ?? '', ...extra } });

  it('GET /login is a form posting the key in a password field (never in a URL), with no inline script or style', async () => {
    const res = await http(`${server.url}/login?next=%2Fadmin%2Fqueues`, { headers: HTML });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.text).toMatch(/<form method="post" action="\/login"/);
    expect(res.text).toMatch(/<input id="key" name="key" type="password"/);
    expect(res.text).toContain('<input type="hidden" name="next" value="/admin/queues">');
    expect(res.text).toContain('<link rel="stylesheet" href="/assets/app.css">');
    expect(res.text).not.toMatch(/<script|<style|style=/);
  });

  it('a valid key gets an httpOnly, SameSite=Strict session cookie and a 303 to next; the cookie opens the API and Bull Board', async () => {
    const signed = await signIn(server.url, key, '/admin/queues');
    expect(signed.status).toBe(303);
    expect(signed.location).toBe('/admin/queues');
    expect(signed.setCookie).toHaveLength(1);
    const attributes = signed.setCookie[0].split(/;\s*/).slice(1).map((a) => a.toLowerCase());
    expect(attributes).toEqual(expect.arrayContaining(['httponly', 'samesite=strict', 'path=/', 'max-age=86400']));
    expect(attributes).not.toContain('secure');
    const token = signed.cookie!.split('=')[1];
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    // Only the token's SHA-256 is stored.
    const rows = (await db.query(`SELECT s.token_hash, k.name FROM drover.sessions s JOIN drover.api_keys k ON k.id = s.api_key_id`)).rows;
    expect(rows.map((r) => r.name)).toContain('operator');
    expect(JSON.stringify(rows)).not.toContain(token);

    const runs = await http(`${server.url}/api/runs`, withCookie(signed.cookie));
    expect(runs.status).toBe(200);
    expect(runs.body.items).toEqual([]);
    expect((await http(`${server.url}/admin/queues`, withCookie(signed.cookie, HTML))).status).toBe(200);
    expect((await http(`${server.url}/admin/queues/api/queues`, withCookie(signed.cookie))).status).toBe(200);
    // An action through the session is audited with the key's name.
    const created = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'one' }, ...withCookie(signed.cookie) });
    expect(created.status).toBe(201);
    expect((await drover.getAudit(created.body.id)).items[0].actor).toBe('api:operator');
  });

  it('with DROVER_COOKIE_SECURE=on marks the cookie Secure and sends HSTS', async () => {
    const secure = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: uniqueNamespace(), DROVER_COOKIE_SECURE: 'on',
    }));
    try {
      const signed = await signIn(secure.url, key);
      expect(signed.status).toBe(303);
      expect(signed.setCookie[0].split(/;\s*/).map((a) => a.toLowerCase())).toContain('secure');
      expect((await http(`${secure.url}/login`)).headers.get('strict-transport-security')).toMatch(/^max-age=\d+/);
      // Without it (the server above), no HSTS: browsers on plain-HTTP loopback are not pinned to HTTPS.
      expect((await http(`${server.url}/login`)).headers.get('strict-transport-security')).toBeNull();
    } finally {
      expect(await secure.stop()).toBe(0);
    }
  });

  it('a wrong key answers 401 with the form and a message, never echoing the key, and sets no cookie', async () => {
    const wrong = `drv_${key.slice(4, 16)}_${'B'.repeat(43)}`;
    for (const attempt of [wrong, 'not-a-key', key.slice(0, -1)]) {
      const res = await signIn(server.url, attempt, '/workflows');
      expect(res.status).toBe(401);
      expect(res.setCookie).toEqual([]);
      expect(res.text).toContain('That API key is not valid or was revoked.');
      expect(res.text).toContain('name="next" value="/workflows"');
      expect(res.text).not.toContain(attempt);
    }
    const empty = await signIn(server.url, '');
    expect(empty.status).toBe(400);
    expect(empty.text).toContain('Enter an API key.');
  });

  it('refuses open redirects: next must be a path of this site', async () => {
    const refused = ['//evil.example/x', 'https://evil.example/', '/\\evil.example', '\\\\evil.example', 'javascript:alert(1)', '/ok\r\nSet-Cookie: x=y', 'evil.example'];
    for (const next of refused) {
      const res = await signIn(server.url, key, next);
      expect([next, res.status, res.location]).toEqual([next, 303, '/']);
    }
    for (const next of ['/runs/123?tab=steps', '/admin/queues/queue/drover-default', '/%2F/x']) {
      expect((await signIn(server.url, key, next)).location).toBe(next);
    }
  });

  it('POST /logout ends the session, clears the cookie and sends the browser to /login', async () => {
    const { cookie } = await signIn(server.url, key);
    expect((await http(`${server.url}/api/runs`, withCookie(cookie))).status).toBe(200);
    const out = await http(`${server.url}/logout`, { method: 'POST', ...withCookie(cookie) });
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/login');
    expect(out.headers.getSetCookie()[0]).toMatch(/^drover_session=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict$/);
    const after = await http(`${server.url}/api/runs`, withCookie(cookie));
    expect(after.status).toBe(401);
    expect(after.body.error.message).toMatch(/session has ended/);
    const page = await http(`${server.url}/admin/queues`, withCookie(cookie, HTML));
    expect([page.status, page.headers.get('location')]).toEqual([303, '/login?next=%2Fadmin%2Fqueues']);
    expect((await http(`${server.url}/logout`)).status).toBe(405);
  });

  it('revoking the key ends its sessions on the next request', async () => {
    const temp = await drover.apiKeys.create('temp');
    const { cookie } = await signIn(server.url, temp.key);
    expect((await http(`${server.url}/api/runs`, withCookie(cookie))).status).toBe(200);
    await drover.apiKeys.revoke(temp.id);
    expect((await http(`${server.url}/api/runs`, withCookie(cookie))).status).toBe(401);
    expect((await http(`${server.url}/admin/queues`, withCookie(cookie))).status).toBe(401);
    // And the revoked key cannot sign in again.
    expect((await signIn(server.url, temp.key)).status).toBe(401);
  });

  it('a session ends when idle longer than DROVER_SESSION_IDLE_MS or older than DROVER_SESSION_MAX_MS; last-seen is written at most once a minute', async () => {
    const hashOf = async (cookie: string | undefined) => {
      const { createHash } = await import('node:crypto');
      return createHash('sha256').update(cookie!.split('=')[1]).digest('hex');
    };
    const idle = await signIn(server.url, key);
    const idleHash = await hashOf(idle.cookie);
    const seen = async () => (await db.query(`SELECT last_seen_at FROM drover.sessions WHERE token_hash = $1`, [idleHash])).rows[0].last_seen_at.getTime();
    const firstSeen = await seen();
    expect((await http(`${server.url}/api/runs`, withCookie(idle.cookie))).status).toBe(200);
    expect(await seen()).toBe(firstSeen); // fresh: no write
    await db.query(`UPDATE drover.sessions SET last_seen_at = now() - interval '2 minutes' WHERE token_hash = $1`, [idleHash]);
    const moved = await seen();
    expect((await http(`${server.url}/api/runs`, withCookie(idle.cookie))).status).toBe(200);
    expect(await seen()).toBeGreaterThan(moved); // stale: written once
    await db.query(`UPDATE drover.sessions SET last_seen_at = now() - interval '61 minutes' WHERE token_hash = $1`, [idleHash]);
    expect((await http(`${server.url}/api/runs`, withCookie(idle.cookie))).status).toBe(401);

    const old = await signIn(server.url, key);
    await db.query(`UPDATE drover.sessions SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day' WHERE token_hash = $1`, [await hashOf(old.cookie)]);
    expect((await http(`${server.url}/api/runs`, withCookie(old.cookie))).status).toBe(401);
    // A new sign-in clears ended sessions away.
    await signIn(server.url, key);
    const left = await db.query(`SELECT count(*)::int AS n FROM drover.sessions WHERE token_hash = ANY($1)`, [[idleHash, await hashOf(old.cookie)]]);
    expect(left.rows[0].n).toBe(0);
  });

  it('browser page requests without a credential are sent to /login; API requests get 401 with one WWW-Authenticate header per scheme', async () => {
    for (const [path, location] of [['/', '/login'], ['/admin/queues', '/login?next=%2Fadmin%2Fqueues'], ['/admin/queues/queue/drover-default?status=failed', '/login?next=%2Fadmin%2Fqueues%2Fqueue%2Fdrover-default%3Fstatus%3Dfailed']]) {
      const res = await http(`${server.url}${path}`, { headers: HTML });
      expect([path, res.status, res.headers.get('location')]).toEqual([path, 303, location]);
    }
    for (const path of ['/api/runs', '/admin/queues', '/admin/queues/api/queues', '/']) {
      const res = await rawRequest(`${server.url}${path}`, { headers: { accept: 'application/json' } });
      expect([path, res.status]).toEqual([path, 401]);
      expect(res.headers['www-authenticate']).toEqual(['Basic realm="drover"', 'Bearer realm="drover"']);
    }
    // The API answers a browser 401, not a redirect.
    expect((await http(`${server.url}/api/runs`, { headers: HTML })).status).toBe(401);
  });
});
