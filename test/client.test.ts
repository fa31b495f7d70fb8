import { ApiKeyStore } from '../src/auth/api-keys';
import { ClientWaitTimeoutError, DroverApiError, DroverClient } from '../src/client/client';
import type { ProcessorContext } from '../src/types';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { redisUrlFor } from './helpers/env';
import { echo, sleep } from './helpers/fixtures';
import { cliEnv, spawnDrover, type DroverProcess } from './helpers/server-process';

const workflows = [
  { name: 'pair', steps: [{ name: 'a', processor: 'echo' }, { name: 'b', processor: 'echo', dependsOn: ['a'] }] },
  { name: 'hold', steps: [{ name: 'wait', processor: 'hold' }, { name: 'after', processor: 'echo', dependsOn: ['wait'] }] },
];

/** The error a promise rejects with. */
async function failure(promise: Promise<unknown>): Promise<DroverApiError> {
  try {
    await promise;
  } catch (error) {
    return error as DroverApiError;
  }
  throw new Error('expected a rejection');
}

describe('DroverClient against a real server', () => {
  let engine: EngineHarness;
  let server: DroverProcess;
  let client: DroverClient;
  let holdMs = 30_000;
  let apiKey: string;

  beforeAll(async () => {
    engine = await createEngine('redis');
    await engine.startWorker({
      workflows,
      processors: { echo: echo(), hold: async (ctx: ProcessorContext) => { await sleep(holdMs, ctx.signal); return { held: holdMs }; } },
    });
    const key = (apiKey = (await new ApiKeyStore(engine.sql).create('client-test')).key);
    server = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor('redis'), PORT: '0', DROVER_NAMESPACE: engine.namespace,
    }));
    client = new DroverClient({ baseUrl: `${server.url}/`, apiKey: key });
  });
  afterAll(async () => {
    const code = await server?.stop();
    await engine?.close();
    expect(code).toBe(0);
  });

  it('creates, reads and waits for a run, with its audit trail', async () => {
    const run = await client.createRun({ workflow: 'pair', input: { n: 7 }, idempotencyKey: 'client-1' });
    expect(run).toMatchObject({ workflow: 'pair', status: 'pending', input: { n: 7 } });
    expect((await client.createRun({ workflow: 'pair', idempotencyKey: 'client-1' })).id).toBe(run.id);
    const done = await client.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('succeeded');
    expect(done.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded']);
    const read = await client.getRun(run.id);
    expect(read).toEqual(done);
    const audit = await client.getAudit(run.id);
    expect(audit.items[0]).toMatchObject({ type: 'run.created', actor: 'api:client-test' });
    expect(audit.items.at(-1)!.type).toBe('run.succeeded');
  });

  it('creates runs in a batch and lists them across pages with the cursor, stable under concurrent inserts', async () => {
    const batch = await client.createRuns(Array.from({ length: 25 }, (_, i) => ({ workflow: 'pair', workspace: 'paging', input: { i } })));
    expect(batch).toMatchObject({ created: 25, failed: 0 });
    const created = batch.items.map((i) => i.id!);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await client.listRuns({ workspace: 'paging', limit: 10, cursor });
      seen.push(...page.items.map((r) => r.id));
      cursor = page.nextCursor ?? undefined;
      pages++;
      // New runs arriving between pages go before the cursor and never shift what is left.
      await client.createRun({ workflow: 'pair', workspace: 'paging' });
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(25);
    expect(new Set(seen)).toEqual(new Set(created));
    const all = (await client.listRuns({ workspace: 'paging', limit: 100 })).items;
    expect(all).toHaveLength(28);
    const times = all.map((r) => Date.parse(r.createdAt));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const mixed = await client.createRuns([{ workflow: 'pair' }, { workflow: 'missing' }]);
    expect(mixed.items.map((i) => i.error?.code)).toEqual([undefined, 'unknown_workflow']);
  });

  it('cancels a running run and resumes it', async () => {
    holdMs = 30_000;
    const run = await client.createRun({ workflow: 'hold' });
    await eventually(async () => (await client.getRun(run.id)).steps[0].status === 'running', 20_000, 'the hold step to start');
    const cancelled = await client.cancelRun(run.id);
    expect(cancelled.id).toBe(run.id);
    const stopped = await client.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(stopped.status).toBe('cancelled');
    expect(stopped.steps.map((s) => s.status)).toEqual(['cancelled', 'cancelled']);

    holdMs = 1;
    await client.retryRun(run.id);
    const resumed = await client.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(resumed.status).toBe('succeeded');
    expect(resumed.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded']);
    const types = (await client.getAudit(run.id)).items.map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['run.cancelled', 'run.retried', 'run.succeeded']));
  });

  it('lists workflows and workers as {items}, like the API', async () => {
    const workflowsPage = await client.listWorkflows();
    expect(Object.keys(workflowsPage)).toEqual(['items']);
    expect(workflowsPage.items.map((w) => w.name).sort()).toEqual(['hold', 'pair']);
    const workers = await client.listWorkers();
    expect(Object.keys(workers)).toEqual(['items']);
    expect(workers.items).toHaveLength(1);
    expect(workers.items[0].status).toBe('active');
  });

  it('sends Bearer and a JSON body ({} when empty) on every mutating call; audit events name their step', async () => {
    const sent: Array<{ method: string; type: string | null; auth: string | null; body: unknown }> = [];
    const spy: typeof fetch = async (url, init) => {
      const headers = new Headers(init?.headers);
      sent.push({ method: init?.method ?? 'GET', type: headers.get('content-type'), auth: headers.get('authorization'), body: init?.body });
      return fetch(url, init);
    };
    const watched = new DroverClient({ baseUrl: server.url, apiKey, fetch: spy });
    holdMs = 1;
    const run = await watched.createRun({ workflow: 'hold' });
    await watched.waitForRun(run.id, { timeoutMs: 20_000 });
    await failure(watched.cancelRun(run.id));
    await failure(watched.retryRun(run.id));
    const posts = sent.filter((r) => r.method === 'POST');
    expect(posts.map((r) => [r.type, r.auth?.startsWith('Bearer drv_'), typeof r.body])).toEqual(Array(3).fill(['application/json', true, 'string']));
    expect(posts.slice(1).map((r) => r.body)).toEqual(['{}', '{}']);
    const audit = await watched.getAudit(run.id);
    expect(audit.items.find((e) => e.type === 'run.created')!.stepName).toBeNull();
    expect(audit.items.filter((e) => e.type === 'step.succeeded').map((e) => e.stepName)).toEqual(['wait', 'after']);
  });

  it('throws DroverApiError with the status and code of the API', async () => {
    const cases: Array<[Promise<unknown>, number, string]> = [
      [client.getRun('00000000-0000-4000-8000-000000000000'), 404, 'not_found'],
      [client.getRun('../../etc/passwd'), 404, 'not_found'],
      [client.createRun({ workflow: 'nope' }), 422, 'unknown_workflow'],
      [client.createRun({ workflow: 'pair', priority: -3 }), 400, 'invalid_request'],
      [client.listRuns({ limit: 500 }), 400, 'invalid_request'],
      [client.listRuns({ cursor: 'garbage' }), 400, 'invalid_request'],
      [client.retryRun((await client.createRun({ workflow: 'pair' })).id), 409, 'invalid_state'],
      [new DroverClient({ baseUrl: server.url, apiKey: 'drv_000000000000_nope' }).listRuns(), 401, 'unauthorized'],
      [new DroverClient({ baseUrl: server.url }).listWorkflows(), 401, 'unauthorized'],
    ];
    for (const [promise, status, code] of cases) {
      const error = await failure(promise);
      expect(error).toBeInstanceOf(DroverApiError);
      expect([error.status, error.code, typeof error.message]).toEqual([status, code, 'string']);
    }
    const invalid = await failure(client.createRun({ workflow: 'pair', delayMs: -1 }));
    expect(invalid.details).toEqual({ issues: [expect.objectContaining({ path: ['delayMs'] })] });
  });

  it('reports an unreachable server and a wait past its deadline', async () => {
    const nowhere = new DroverClient({ baseUrl: 'http://127.0.0.1:1', apiKey: 'x' });
    const error = await failure(nowhere.listRuns());
    expect([error.status, error.code, error.retryable]).toEqual([0, 'unreachable', true]);
    holdMs = 30_000;
    const run = await client.createRun({ workflow: 'hold' });
    const late = (await failure(client.waitForRun(run.id, { timeoutMs: 300 }))) as unknown as ClientWaitTimeoutError;
    expect(late).toBeInstanceOf(ClientWaitTimeoutError);
    expect(late.run.id).toBe(run.id);
    await client.cancelRun(run.id);
    expect(() => new DroverClient({ baseUrl: 'ftp://x' })).toThrow(TypeError);
  });
});
