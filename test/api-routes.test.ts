import { ApiKeyStore } from '../src/auth/api-keys';
import { NonRetryableError } from '../src/errors';
import type { ProcessorContext } from '../src/types';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { echo, flaky, sleep } from './helpers/fixtures';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';

const workflows = [
  { name: 'pair', steps: [{ name: 'a', processor: 'echo' }, { name: 'b', processor: 'echo', dependsOn: ['a'] }] },
  { name: 'hold', steps: [{ name: 'wait', processor: 'hold' }, { name: 'after', processor: 'echo', dependsOn: ['wait'] }] },
  { name: 'breaks', steps: [{ name: 'x', processor: 'breaks' }] },
  { name: 'crunch', steps: [{ name: 'c', processor: 'echo', queue: 'cpu' }] },
  { name: 'flaky', steps: [{ name: 'f', processor: 'flaky', attempts: 2, backoff: { type: 'fixed' as const, delayMs: 10 } }] },
];

describeEachBackend('the HTTP API routes', (backend) => {
  let engine: EngineHarness;
  let server: DroverProcess;
  let key: string;
  let failBreaks = true;
  const api = (path: string, init: Parameters<typeof http>[1] = {}) =>
    http(`${server.url}${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string> | undefined) } });

  beforeAll(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({
      workflows,
      processors: {
        echo: echo(),
        flaky: flaky(1),
        hold: async (ctx: ProcessorContext) => { await sleep(30_000, ctx.signal); return {}; },
        breaks: async () => { if (failBreaks) throw new NonRetryableError('broken on purpose'); return { fixed: true }; },
      },
      queues: ['default', 'cpu'],
    });
    key = (await new ApiKeyStore(engine.sql).create('routes-test')).key;
    server = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), PORT: '0', DROVER_NAMESPACE: engine.namespace,
    }));
  });
  afterAll(async () => {
    const code = await server?.stop();
    await engine?.close();
    expect(code).toBe(0);
  });

  it('POST /api/runs creates a run (201), returns it again for a seen idempotency key (200)', async () => {
    const first = await api('/api/runs', { method: 'POST', json: { workflow: 'pair', input: { n: 1 }, idempotencyKey: 'k-1' } });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ workflow: 'pair', input: { n: 1 }, idempotencyKey: 'k-1', workspace: 'default', priority: 0 });
    expect(first.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(first.body.createdAt).toISOString()).toBe(first.body.createdAt);
    const again = await api('/api/runs', { method: 'POST', json: { workflow: 'pair', input: { n: 2 }, idempotencyKey: 'k-1' } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const done = await engine.drover.waitForRun(first.body.id);
    expect(done.status).toBe('succeeded');
  });

  it('POST /api/runs answers 400, 422 and 413 with the error shape', async () => {
    const bad = await api('/api/runs', { method: 'POST', json: { workflow: 'pair', priority: -1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_request' });
    expect(bad.body.error.message).toMatch(/priority/);
    const unknown = await api('/api/runs', { method: 'POST', json: { workflow: 'nope' } });
    expect(unknown.status).toBe(422);
    expect(unknown.body).toEqual({ error: { code: 'unknown_workflow', message: 'unknown workflow "nope"' } });
    const big = await api('/api/runs', { method: 'POST', json: { workflow: 'pair', input: { blob: 'x'.repeat(1024 * 1024 + 10) } } });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
    const huge = await api('/api/runs', { method: 'POST', json: { workflow: 'pair', input: { blob: 'x'.repeat(3 * 1024 * 1024) } } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('payload_too_large');
  });

  it('POST /api/runs/batch creates what it can and reports each item; more than 1000 is a 400', async () => {
    const res = await api('/api/runs/batch', { method: 'POST', json: { runs: [{ workflow: 'pair' }, { workflow: 'nope' }, { workflow: 'pair', priority: 'high' }, { workflow: 'crunch' }] } });
    expect(res.status).toBe(200);
    expect(res.body.created).toBe(2);
    expect(res.body.failed).toBe(2);
    expect(res.body.items.map((i: any) => [i.index, Boolean(i.id), i.error?.code])).toEqual([
      [0, true, undefined], [1, false, 'unknown_workflow'], [2, false, 'invalid_request'], [3, true, undefined],
    ]);
    const tooMany = await api('/api/runs/batch', { method: 'POST', json: { runs: Array.from({ length: 1001 }, () => ({ workflow: 'pair' })) } });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.code).toBe('invalid_request');
    const notList = await api('/api/runs/batch', { method: 'POST', json: { runs: 'pair' } });
    expect(notList.status).toBe(400);
  });

  it('GET /api/runs lists newest first with filters and a cursor; bad limits are 400', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api('/api/runs', { method: 'POST', json: { workflow: 'pair', workspace: 'listing' } })).body.id);
    const page1 = await api('/api/runs?workspace=listing&limit=2');
    expect(page1.status).toBe(200);
    expect(page1.body.items.map((r: any) => r.id)).toEqual([ids[2], ids[1]]);
    expect(typeof page1.body.nextCursor).toBe('string');
    const page2 = await api(`/api/runs?workspace=listing&limit=2&cursor=${encodeURIComponent(page1.body.nextCursor)}`);
    expect(page2.body.items.map((r: any) => r.id)).toEqual([ids[0]]);
    expect(page2.body.nextCursor).toBeNull();
    const byWorkflow = await api('/api/runs?workflow=crunch');
    expect(byWorkflow.body.items.length).toBeGreaterThan(0);
    expect(byWorkflow.body.items.every((r: any) => r.workflow === 'crunch')).toBe(true);
    const defaults = await api('/api/runs');
    expect(defaults.body.items.length).toBeLessThanOrEqual(20);
    for (const q of ['limit=0', 'limit=101', 'limit=-5', 'limit=abc', 'status=done', 'cursor=zzz', 'bogus=1']) {
      const res = await api(`/api/runs?${q}`);
      expect([q, res.status, res.body?.error?.code]).toEqual([q, 400, 'invalid_request']);
    }
  });

  it('GET /api/runs/:id gives the run with its steps; unknown and malformed ids are 404', async () => {
    const created = (await api('/api/runs', { method: 'POST', json: { workflow: 'pair', input: { v: 'x' } } })).body;
    await engine.drover.waitForRun(created.id);
    const res = await api(`/api/runs/${created.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: created.id, status: 'succeeded', output: { b: expect.any(Object) } });
    expect(res.body.steps.map((s: any) => [s.name, s.status, s.dependsOn, s.attempts, s.queue, s.processor])).toEqual([
      ['a', 'succeeded', [], 1, 'default', 'echo'], ['b', 'succeeded', ['a'], 1, 'default', 'echo'],
    ]);
    for (const field of ['createdAt', 'queuedAt', 'startedAt', 'finishedAt']) expect(typeof res.body.steps[0][field]).toBe('string');
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', '1']) {
      const missing = await api(`/api/runs/${id}`);
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('not_found');
    }
  });

  it('GET /api/runs/:id/audit lists events oldest first, naming the API key as actor', async () => {
    const created = (await api('/api/runs', { method: 'POST', json: { workflow: 'pair' } })).body;
    await engine.drover.waitForRun(created.id);
    const res = await api(`/api/runs/${created.id}/audit`);
    expect(res.status).toBe(200);
    const items = res.body.items;
    expect(items[0]).toMatchObject({ type: 'run.created', runId: created.id, actor: 'api:routes-test', stepId: null, stepName: null });
    // Step events carry the step's name next to its id.
    expect(items.filter((e: any) => e.type === 'step.succeeded').map((e: any) => e.stepName)).toEqual(['a', 'b']);
    expect(items.filter((e: any) => e.stepId).every((e: any) => typeof e.stepName === 'string')).toBe(true);
    expect(items[items.length - 1].type).toBe('run.succeeded');
    const times = items.map((e: any) => Date.parse(e.at));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect((await api('/api/runs/00000000-0000-4000-8000-000000000000/audit')).status).toBe(404);
  });

  it('a step that succeeded on a later attempt shows no error; the failed attempt stays in the audit trail', async () => {
    const created = (await api('/api/runs', { method: 'POST', json: { workflow: 'flaky' } })).body;
    await engine.drover.waitForRun(created.id);
    const res = await api(`/api/runs/${created.id}`);
    expect(res.body.steps[0]).toMatchObject({ name: 'f', status: 'succeeded', attempts: 2, error: null });
    expect((await engine.drover.getRun(created.id)).steps[0].error).toBeNull();
    const failed = (await api(`/api/runs/${created.id}/audit`)).body.items.filter((e: any) => e.type === 'step.attempt_failed');
    expect(failed).toEqual([expect.objectContaining({ stepName: 'f', data: expect.objectContaining({ attempt: 1, error: expect.objectContaining({ message: 'flaky failure 1' }) }) })]);
  });

  it('POST /api/runs/:id/cancel cancels (200), then refuses (409); unknown is 404', async () => {
    const created = (await api('/api/runs', { method: 'POST', json: { workflow: 'hold' } })).body;
    await eventually(async () => (await engine.drover.getRun(created.id)).steps[0].status === 'running', 20_000, 'the hold step to run');
    const cancelled = await api(`/api/runs/${created.id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.id).toBe(created.id);
    const run = await engine.drover.waitForRun(created.id);
    expect(run.status).toBe('cancelled');
    const again = await api(`/api/runs/${created.id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('invalid_state');
    const audit = (await engine.drover.getAudit(created.id)).items;
    expect(audit.find((e) => e.type === 'run.cancelled')?.actor).toBe('api:routes-test');
    expect((await api('/api/runs/00000000-0000-4000-8000-000000000000/cancel', { method: 'POST' })).status).toBe(404);
    expect((await api('/api/runs/x/cancel', { method: 'POST' })).status).toBe(404);
  });

  it('POST /api/runs/:id/retry resumes a failed run (200); a succeeded run is 409; unknown is 404', async () => {
    failBreaks = true;
    const created = (await api('/api/runs', { method: 'POST', json: { workflow: 'breaks' } })).body;
    expect((await engine.drover.waitForRun(created.id)).status).toBe('failed');
    failBreaks = false;
    const retried = await api(`/api/runs/${created.id}/retry`, { method: 'POST' });
    expect(retried.status).toBe(200);
    const run = await engine.drover.waitForRun(created.id);
    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ x: { fixed: true } });
    const again = await api(`/api/runs/${created.id}/retry`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('invalid_state');
    expect((await api('/api/runs/00000000-0000-4000-8000-000000000000/retry', { method: 'POST' })).status).toBe(404);
  });

  it('GET /api/workflows and /api/workers list the registry', async () => {
    const wfs = await api('/api/workflows');
    expect(wfs.status).toBe(200);
    expect(wfs.body.items.map((w: any) => w.name).sort()).toEqual(['breaks', 'crunch', 'flaky', 'hold', 'pair']);
    const workers = await api('/api/workers');
    expect(workers.status).toBe(200);
    expect(workers.body.items).toHaveLength(1);
    const w = workers.body.items[0];
    for (const field of ['id', 'hostname', 'pid', 'queues', 'concurrency', 'startedAt', 'lastHeartbeatAt', 'status']) expect(w).toHaveProperty(field);
    expect(w.queues.sort()).toEqual(['cpu', 'default']);
    expect(w.status).toBe('active');
  });

  it('serves /health, /ready and /metrics without a key', async () => {
    const health = await http(`${server.url}/health`);
    expect([health.status, health.body]).toEqual([200, { status: 'ok' }]);
    const ready = await http(`${server.url}/ready`);
    expect([ready.status, ready.body]).toEqual([200, { status: 'ok', checks: { postgres: true, queue: true } }]);
    const metrics = await http(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(/^drover_runs_created_total \d+/m);
    // Standard process metric names (not drover_process_process_…), and the API's queue name as the label.
    expect(metrics.text).toMatch(/^process_cpu_seconds_total /m);
    expect(metrics.text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(metrics.text).not.toContain('drover_process_');
    expect(metrics.text).toContain('drover_queue_jobs{queue="default",state="completed"}');
    expect(metrics.text).not.toContain(`queue="${engine.namespace}.`);
  });

  it('answers unknown routes with 404 JSON and wrong methods with 405 and Allow', async () => {
    const unknown = await api('/api/nothing');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('not_found');
    const outside = await http(`${server.url}/nothing/here`);
    expect(outside.status).toBe(404);
    expect(outside.body.error.code).toBe('not_found');
    const cases: Array<[string, string, string]> = [
      ['DELETE', '/api/runs', 'GET, POST, HEAD'], ['PUT', '/api/runs/batch', 'POST'], ['GET', '/api/runs/batch', 'POST'],
      ['DELETE', '/api/runs/00000000-0000-4000-8000-000000000000', 'GET, HEAD'], ['GET', '/api/runs/x/cancel', 'POST'],
      ['PATCH', '/api/workflows', 'GET, HEAD'], ['POST', '/health', 'GET, HEAD'], ['POST', '/metrics', 'GET, HEAD'],
      ['POST', '/', 'GET, HEAD'], ['DELETE', '/runs/00000000-0000-4000-8000-000000000000', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await api(path, { method });
      expect([method, path, res.status, res.headers.get('allow'), res.body?.error?.code]).toEqual([method, path, 405, allow, 'method_not_allowed']);
      // The message names the full path the client asked for (not the path inside a router), without the query.
      expect(res.body.error.message).toMatch(new RegExp(`^${method} is not allowed on ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; use `));
    }
    expect((await api('/api/runs/batch?x=1', { method: 'GET' })).body.error.message).toBe('GET is not allowed on /api/runs/batch; use POST');
  });

  it('serves the runs dashboard at / and Bull Board over every step queue', async () => {
    const root = await api('/');
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toMatch(/^text\/html/);
    expect(root.text).toContain('<h1>Runs</h1>');
    const page = await api('/admin/queues');
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<html/i);
    // The queue list refreshes every 10 s; the first read happened at start, after the worker registered.
    const queues = await api('/admin/queues/api/queues');
    expect(queues.status).toBe(200);
    const names = queues.body.queues.map((q: any) => q.name).sort();
    expect(names).toEqual([`${engine.namespace}.cpu`, `${engine.namespace}.default`]);
    // Read-only unless DROVER_BULL_BOARD=readwrite.
    expect(queues.body.queues.every((q: any) => q.readOnlyMode === true)).toBe(true);
  });
});
