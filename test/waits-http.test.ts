import { ApiKeyStore } from '../src/auth/api-keys';
import { DroverClient } from '../src/client/client';
import type { WorkflowDefinition } from '../src/types';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { cliEnv, http, runCli, spawnDrover, type DroverProcess } from './helpers/server-process';
import { waitForEvent } from './helpers/waits';

const approval: WorkflowDefinition = {
  name: 'approval',
  steps: [{ name: 'approve', waitFor: { signal: 'approved' } }, { name: 'ship', processor: 'ship', dependsOn: ['approve'] }],
};

// The signal surface over HTTP, the client and the CLI, as users reach it: the compiled server and CLI.
describeEachBackend('signals over HTTP, DroverClient and the CLI', (backend) => {
  jest.setTimeout(120_000);
  let engine: EngineHarness;
  let server: DroverProcess;
  let producer: string;
  let reader: string;
  const post = (path: string, key: string, init: RequestInit & { json?: unknown } = {}) =>
    http(`${server.url}${path}`, { method: 'POST', ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string> ?? {}) } });

  beforeAll(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({ workflows: [approval], processors: { ship: async (ctx: any) => ({ shipped: ctx.parents.approve }) } });
    const keys = new ApiKeyStore(engine.sql);
    producer = (await keys.create('reviewer', { scope: 'producer' })).key;
    reader = (await keys.create('watcher', { scope: 'read' })).key;
    server = await spawnDrover(['server'], cliEnv({
      DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), PORT: '0', DROVER_NAMESPACE: engine.namespace,
    }));
  });
  afterAll(async () => {
    const code = await server?.stop();
    await engine?.close();
    expect(code).toBe(0);
  });

  it('answers 201 with the signal, audited with the key that sent it, and the waiting step ends', async () => {
    const run = await engine.drover.createRun({ workflow: 'approval' });
    await waitForEvent(engine, run.id, 'step.waiting', 'approve');
    const res = await post(`/api/runs/${run.id}/signals/approved`, producer, { json: { payload: { ok: true } } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ runId: run.id, signal: 'approved', first: true, delivered: ['approve'], actor: 'api:reviewer' });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 });
    expect(done.steps.find((s) => s.name === 'ship')!.output).toEqual({ shipped: { ok: true } });
    const audit = (await engine.drover.getAudit(run.id)).items.find((e) => e.type === 'run.signal_received');
    expect(audit).toMatchObject({ actor: 'api:reviewer', data: { signal: 'approved', first: true, delivered: ['approve'] } });
    // The run is finished now: 409.
    const late = await post(`/api/runs/${run.id}/signals/approved`, producer, { json: { payload: 1 } });
    expect([late.status, late.body.error.code]).toEqual([409, 'invalid_state']);
  });

  it('answers 404 for an unknown or malformed run, 400 for bad bodies and names, 413 for a large payload, 403 for a read key', async () => {
    const run = await engine.drover.createRun({ workflow: 'approval' });
    const unknown = await post(`/api/runs/00000000-0000-4000-8000-000000000000/signals/approved`, producer, { json: {} });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'not_found']);
    const malformed = await post(`/api/runs/nope/signals/approved`, producer, { json: {} });
    expect(malformed.status).toBe(404);
    const notObject = await post(`/api/runs/${run.id}/signals/approved`, producer, { json: [1, 2] });
    expect([notObject.status, notObject.body.error.code]).toEqual([400, 'invalid_request']);
    const extra = await post(`/api/runs/${run.id}/signals/approved`, producer, { json: { payload: 1, other: 2 } });
    expect([extra.status, extra.body.error.code]).toEqual([400, 'invalid_request']);
    expect(extra.body.error.message).toMatch(/other/);
    const notJson = await post(`/api/runs/${run.id}/signals/approved`, producer, { body: 'yes', headers: { 'content-type': 'text/plain' } });
    expect(notJson.status).toBeGreaterThanOrEqual(400);
    expect(notJson.status).toBeLessThan(500);
    const badName = await post(`/api/runs/${run.id}/signals/${encodeURIComponent('no spaces')}`, producer, { json: {} });
    expect([badName.status, badName.body.error.message]).toEqual([400, 'signal: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}']);
    const big = await post(`/api/runs/${run.id}/signals/approved`, producer, { json: { payload: 'x'.repeat(70_000) } });
    expect([big.status, big.body.error.code]).toEqual([413, 'payload_too_large']);
    const refused = await post(`/api/runs/${run.id}/signals/approved`, reader, { json: {} });
    expect([refused.status, refused.body.error.code]).toEqual([403, 'forbidden']);
    // None of them was kept: the run still waits.
    expect((await engine.drover.getRun(run.id)).status).not.toBe('succeeded');
    expect((await engine.drover.getAudit(run.id)).items.filter((e) => e.type === 'run.signal_received')).toHaveLength(0);
    await engine.drover.cancelRun(run.id);
  });

  it('DroverClient.signal and drover runs signal send signals', async () => {
    const client = new DroverClient({ baseUrl: server.url, apiKey: producer });
    const viaClient = await engine.drover.createRun({ workflow: 'approval' });
    const sent = await client.signal(viaClient.id, 'approved', 'from the client');
    expect(sent).toMatchObject({ signal: 'approved', first: true, actor: 'api:reviewer' });
    expect((await client.waitForRun(viaClient.id, { timeoutMs: 10_000 })).steps[0].output).toBe('from the client');

    const env = cliEnv({ DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), DROVER_NAMESPACE: engine.namespace });
    const viaCli = await engine.drover.createRun({ workflow: 'approval' });
    await waitForEvent(engine, viaCli.id, 'step.waiting', 'approve');
    const text = await runCli(['runs', 'signal', viaCli.id, 'approved', '--payload', '{"by":"cli"}'], env);
    expect([text.code, text.stdout.trim(), text.stderr]).toEqual([0, `sent signal "approved" to run ${viaCli.id}; ended approve`, '']);
    expect((await engine.drover.waitForRun(viaCli.id, { timeoutMs: 10_000 })).steps[0].output).toEqual({ by: 'cli' });
    const again = await runCli(['runs', 'signal', viaCli.id, 'approved', '--json'], env);
    expect(again.code).toBe(1);
    // --json: the one line is the API's error shape.
    expect(JSON.parse(again.stderr.trim())).toEqual({ error: { code: 'invalid_state', message: `run ${viaCli.id} is succeeded; signals go to pending or running runs` } });
    const badJson = await runCli(['runs', 'signal', viaCli.id, 'approved', '--payload', '{nope'], env);
    expect(badJson.code).toBe(2);
    const other = await engine.drover.createRun({ workflow: 'approval' });
    const json = await runCli(['runs', 'signal', other.id, 'later', '--json'], env);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ runId: other.id, signal: 'later', first: true, delivered: [] });
    await engine.drover.cancelRun(other.id);
  });
});
