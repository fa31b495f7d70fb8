import { Drover } from '../src/drover';
import { startServer, type DroverServer } from '../src/http/server';
import { eventually, sleep } from './helpers/engine';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { http } from './helpers/server-process';
import { openEventStream, signIn } from './helpers/web';

/** The runs dashboard's reads and actions keep a workspace-limited key inside its workspaces. */
describe('the dashboard and workspace-limited keys', () => {
  let drover: Drover;
  let server: DroverServer;
  let limited: string;
  let everyWorkspace: string;
  let mine: string;
  let theirs: string;

  beforeAll(async () => {
    drover = await Drover.connect({ databaseUrl: await createTestDatabase(), redisUrl: testRedisUrl(), namespace: uniqueNamespace() });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    limited = (await drover.apiKeys.create('acme', { scope: 'producer', workspaces: ['acme'] })).key;
    everyWorkspace = (await drover.apiKeys.create('reader', { scope: 'read' })).key;
    mine = (await drover.createRun({ workflow: 'one', workspace: 'acme' })).id;
    theirs = (await drover.createRun({ workflow: 'one', workspace: 'globex' })).id;
    server = await startServer({ drover, port: 0 });
  });
  afterAll(async () => {
    await server?.close();
    await drover?.close();
  });

  const page = (key: string, path: string) => http(`${server.url}${path}`, { headers: { authorization: `Bearer ${key}`, accept: 'text/html' } });

  it('lists, counts and shows only the key\'s workspaces; other runs are not found', async () => {
    const list = await page(limited, '/');
    expect(list.status).toBe(200);
    expect(list.text).toContain(`/runs/${mine}`);
    expect(list.text).not.toContain(`/runs/${theirs}`);
    const asked = await page(limited, '/?workspace=globex');
    expect(asked.status).toBe(200);
    expect(asked.text).not.toContain(`/runs/${theirs}`);
    expect((await page(limited, `/?q=${theirs}`)).text).not.toContain(`/runs/${theirs}`);
    expect((await page(limited, `/runs/${mine}`)).status).toBe(200);
    const other = await page(limited, `/runs/${theirs}`);
    const missing = await page(limited, '/runs/00000000-0000-4000-8000-000000000000');
    expect([other.status, missing.status]).toEqual([404, 404]);
    expect((await page(limited, `/events?run=${theirs}`)).status).toBe(404);
    // A key of every workspace sees both.
    const all = await page(everyWorkspace, '/');
    expect(all.text).toContain(`/runs/${mine}`);
    expect(all.text).toContain(`/runs/${theirs}`);
    expect((await page(everyWorkspace, `/runs/${theirs}`)).status).toBe(200);
  });

  it('refuses the queues page (every workspace\'s jobs) to a limited key, also through its session', async () => {
    const refused = await page(limited, '/queues');
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('limited to workspaces (acme)');
    expect((await page(everyWorkspace, '/queues')).status).toBe(200);
    const { cookie } = await signIn(server.url, limited);
    const viaSession = await http(`${server.url}/queues`, { headers: { cookie: cookie!, accept: 'text/html' } });
    expect(viaSession.status).toBe(403);
    const listViaSession = await http(`${server.url}/`, { headers: { cookie: cookie!, accept: 'text/html' } });
    expect(listViaSession.text).not.toContain(`/runs/${theirs}`);
  });

  it('the dashboard\'s actions (the /api routes it calls) stay inside the workspaces too', async () => {
    const { cookie } = await signIn(server.url, limited);
    const headers = { cookie: cookie!, 'content-type': 'application/json', origin: server.url };
    for (const action of ['cancel', 'retry', 'rerun']) {
      const res = await http(`${server.url}/api/runs/${theirs}/${action}`, { method: 'POST', headers, body: '{}' });
      expect([action, res.status, res.body.error.code]).toEqual([action, 404, 'not_found']);
    }
    expect((await drover.getRun(theirs)).status).toBe('pending');
    const rerun = await http(`${server.url}/api/runs/${mine}/rerun`, { method: 'POST', headers, body: '{}' });
    expect([rerun.status, rerun.body.workspace]).toEqual([201, 'acme']);
    // A read key cannot act from the dashboard either.
    const reader = await signIn(server.url, everyWorkspace);
    const refused = await http(`${server.url}/api/runs/${mine}/cancel`, { method: 'POST', headers: { ...headers, cookie: reader.cookie! }, body: '{}' });
    expect([refused.status, refused.body.error.code]).toEqual([403, 'forbidden']);
  });

  it('the live list stream tells a limited key of its workspaces\' runs only (not even a count of the others)', async () => {
    const open = (key: string, path = '/events') => openEventStream(`${server.url}${path}`, { authorization: `Bearer ${key}`, accept: 'text/event-stream' });
    const globex = (await drover.createRun({ workflow: 'one', workspace: 'globex' })).id;
    const [own, other] = await Promise.all([open(limited), open(everyWorkspace, `/events?run=${globex}`)]);
    try {
      expect([own.res.status, other.res.status]).toEqual([200, 200]);
      await eventually(() => own.text().includes('retry:') && other.text().includes('retry:'), 5000, 'both streams open');
      await sleep(1500); // what the earlier tests did is told by now
      const [ownMark, otherMark] = [own.text().length, other.text().length];
      await drover.cancelRun(globex, { actor: 'test' });
      await eventually(() => other.text().slice(otherMark).includes(`data: ${globex}`), 5000, 'the globex run\'s stream to hear its cancel');
      await sleep(1500); // a NOTIFY is read within milliseconds: had the change leaked, it would be here
      expect(own.text().slice(ownMark)).not.toContain('event: change');
      await drover.createRun({ workflow: 'one', workspace: 'acme' });
      await eventually(() => own.text().slice(ownMark).includes('event: change'), 5000, 'the limited stream to hear acme');
    } finally {
      await Promise.all([own.close(), other.close()]);
    }
  });
});
