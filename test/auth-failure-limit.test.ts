import { Drover } from '../src/drover';
import { startServer, type DroverServer } from '../src/http/server';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';
import { signIn } from './helpers/web';

describe('cheap open endpoints: failed authentications limited per address, /ready answers shared', () => {
  let databaseUrl: string;
  let namespace: string;
  let drover: Drover;
  let key: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    key = (await drover.apiKeys.create('limited')).key;
  });
  afterAll(() => drover?.close());

  it('answers 429 with Retry-After once an address has DROVER_AUTH_FAILURE_LIMIT failures in a minute, on the API, pages and /login', async () => {
    const server: DroverProcess = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace, DROVER_AUTH_FAILURE_LIMIT: '5',
    }));
    try {
      // Requests without any credential are not failures (a browser before signing in).
      for (let i = 0; i < 8; i++) expect((await http(`${server.url}/api/runs`)).status).toBe(401);
      const wrong = { authorization: `Bearer drv_000000000000_${'A'.repeat(43)}` };
      for (let i = 0; i < 3; i++) expect((await http(`${server.url}/api/runs`, { headers: wrong })).status).toBe(401);
      expect((await signIn(server.url, 'drv_000000000000_wrong')).status).toBe(401);
      expect((await http(`${server.url}/admin/queues`, { headers: { cookie: `drover_session=${'x'.repeat(43)}` } })).status).toBe(401);
      // Five failures: the address now waits, even with a valid key.
      for (const headers of [wrong, { authorization: `Bearer ${key}` }]) {
        const res = await http(`${server.url}/api/runs`, { headers });
        expect([res.status, res.body.error.code]).toEqual([429, 'too_many_requests']);
        const wait = Number(res.headers.get('retry-after'));
        expect(wait).toBeGreaterThanOrEqual(1);
        expect(wait).toBeLessThanOrEqual(60);
        expect(res.body.error.message).toBe(`too many failed authentications from this address: try again in ${wait} s`);
      }
      const form = await signIn(server.url, key);
      expect(form.status).toBe(429);
      expect(form.setCookie).toEqual([]);
      expect(form.text).toMatch(/Too many failed sign-ins from this address: try again in \d+ s\./);
      expect((await http(`${server.url}/health`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('runs one readiness check per period however many probes arrive, and checks again after it', async () => {
    let checks = 0;
    const check = drover.checkReady.bind(drover);
    drover.checkReady = async () => {
      checks++;
      return check();
    };
    // A long period here, so a loaded machine cannot make the probes outlast it.
    const shared: DroverServer = await startServer({ drover, port: 0, readyCacheMs: 60_000 });
    try {
      const first = await Promise.all(Array.from({ length: 50 }, () => http(`${shared.url}/ready`)));
      expect(first.map((r) => r.status)).toEqual(Array(50).fill(200));
      for (let i = 0; i < 20; i++) await http(`${shared.url}/ready`);
      expect(checks).toBe(1);
    } finally {
      await shared.close();
    }
    checks = 0;
    const short: DroverServer = await startServer({ drover, port: 0, readyCacheMs: 100 });
    try {
      expect((await http(`${short.url}/ready`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 150));
      const later = await http(`${short.url}/ready`);
      expect([later.status, later.body]).toEqual([200, { status: 'ok', checks: { postgres: true, queue: true } }]);
      expect(checks).toBe(2);
    } finally {
      await short.close();
      drover.checkReady = check;
    }
  });
});
