import { Writable } from 'node:stream';
import pino from 'pino';
import { ApiKeyStore } from '../src/auth/api-keys';
import { NonRetryableError } from '../src/errors';
import { startServer, type DroverServer } from '../src/http/server';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import IORedis from 'ioredis';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { http } from './helpers/server-process';

/** With DROVER_BULL_BOARD=readwrite, Bull Board's actions keep drover's meaning or are refused, and each is audited. */
describeEachBackend('Bull Board, read-write', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  let auth: Record<string, string>;
  let logLines: string[];

  beforeEach(async () => {
    engine = await createEngine(backend);
    auth = { authorization: `Bearer ${(await new ApiKeyStore(engine.sql).create('ops')).key}` };
    logLines = [];
    const stream = new Writable({ write(chunk, _enc, done) { logLines.push(...String(chunk).split('\n').filter(Boolean)); done(); } });
    server = await startServer({ drover: engine.drover, port: 0, queueRefreshIntervalMs: 100, readyCacheMs: 0, queueGaugeCacheMs: 0, bullBoard: 'readwrite', logger: pino({ level: 'warn' }, stream) });
  });
  afterEach(async () => {
    await server.close();
    await engine.close();
  });

  const queueName = () => encodeURIComponent(`${engine.namespace}.default`);
  const api = (path: string) => `${server.url}/admin/queues/api/queues${path}`;
  const queueEvents = async () => (await engine.drover.listQueueEvents()).reverse();

  it("retry of a failed step's job resumes its run, audited with the key's name", async () => {
    let broken = true;
    const wf = { name: 'fixable', steps: [{ name: 'a', processor: 'once' }] };
    await engine.startWorker({ workflows: [wf], processors: { once: async () => { if (broken) throw new NonRetryableError('down'); return 'fixed'; } } });
    const created = await engine.drover.createRun({ workflow: 'fixable' });
    const failed = await engine.drover.waitForRun(created.id, { timeoutMs: 10_000 });
    expect(failed.status).toBe('failed');
    const jobId = `${failed.steps[0].id}-g0`;
    broken = false;

    const retry = await http(api(`/${queueName()}/${jobId}/retry`), { method: 'PUT', headers: auth });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ run: { id: failed.id, status: 'running' } });
    const done = await engine.drover.waitForRun(failed.id, { timeoutMs: 10_000 });
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ a: 'fixed' });
    const retried = (await engine.drover.getAudit(failed.id)).items.filter((e) => e.type === 'run.retried');
    expect(retried).toEqual([expect.objectContaining({ actor: 'api:ops' })]);
    // The step ran again as a new job (a new generation); the old failed job was not revived.
    expect(await engine.backend.queue('default').getJobState(jobId)).toBe('failed');

    // The run is no longer failed: Retry is refused with the reason.
    const again = await http(api(`/${queueName()}/${jobId}/retry`), { method: 'PUT', headers: auth });
    expect(again.status).toBe(409);
    expect(again.body.error).toEqual({ code: 'invalid_state', message: expect.stringContaining(`run ${failed.id} is succeeded: Retry resumes a failed run only`) });
    // A job that is no step job of its run.
    await engine.backend.queue('default').add('x', { stepId: failed.steps[0].id, runId: failed.id, generation: 0 }, { jobId: 'forged' });
    const forged = await http(api(`/${queueName()}/forged/retry`), { method: 'PUT', headers: auth });
    expect(forged.status).toBe(409);
    expect(forged.body.error.message).toBe('job forged is not a drover step job (job id mismatch)');
    expect((await http(api(`/${queueName()}/nope/retry`), { method: 'PUT', headers: auth })).status).toBe(404);
  });

  it("refuses promote, job data updates, adds and retry-all, and leaves the job as it was", async () => {
    await engine.drover.registerWorkflows([{ name: 'later', steps: [{ name: 's', processor: 'p' }] }]);
    const run = await engine.drover.createRun({ workflow: 'later', delayMs: 60_000 });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    const jobId = `${step.id}-g0`;
    const refused: Array<[string, string, unknown?]> = [
      ['PUT', api(`/${queueName()}/${jobId}/promote`)],
      ['PUT', api(`/${queueName()}/promote`)],
      ['PATCH', api(`/${queueName()}/${jobId}/update-data`), { data: { runId: run.id, stepId: step.id, generation: 7 } }],
      ['PATCH', api(`/${queueName()}/${jobId}/delay`), { delay: 0 }],
      ['POST', api(`/${queueName()}/add`), { name: 'x', data: {} }],
      ['PUT', api(`/${queueName()}/retry/failed`)],
      ['PUT', api(`/${queueName()}/concurrency`), { concurrency: 1 }],
    ];
    for (const [method, url, json] of refused) {
      const res = await http(url, { method, headers: auth, json });
      expect([method, url, res.status, res.body.error.code]).toEqual([method, url, 403, 'forbidden']);
      expect(res.body.error.message.length).toBeGreaterThan(20);
    }
    const job = await engine.backend.queue('default').getJob(jobId);
    expect(await job!.getState()).toBe('delayed');
    expect(job!.data).toMatchObject({ runId: run.id, stepId: step.id, generation: 0 });
    expect(await queueEvents()).toEqual([]);
  });

  it('audits pause, resume, clean and job removal; a paused queue shows in /ready and in metrics', async () => {
    await engine.drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    const run = await engine.drover.createRun({ workflow: 'one' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    const bull = `${engine.namespace}.default`;

    expect((await http(api(`/${queueName()}/pause`), { method: 'PUT', headers: auth })).status).toBe(200);
    const ready = await http(`${server.url}/ready`);
    expect(ready.status).toBe(200);
    expect(ready.body.checks).toEqual({ postgres: true, queue: true, pausedQueues: ['default'] });
    const metrics = await http(`${server.url}/metrics`);
    expect(metrics.text).toContain('drover_queue_paused{queue="default"} 1');
    expect((await http(api(`/${queueName()}/resume`), { method: 'PUT', headers: auth })).status).toBe(200);
    expect((await http(`${server.url}/ready`)).body.checks).toEqual({ postgres: true, queue: true });
    expect((await http(`${server.url}/metrics`)).text).toContain('drover_queue_paused{queue="default"} 0');

    expect((await http(api(`/${queueName()}/${step.id}-g0/clean`), { method: 'PUT', headers: auth })).status).toBe(204);
    expect(await engine.backend.queue('default').getJob(`${step.id}-g0`)).toBeFalsy();
    expect((await http(api(`/${queueName()}/clean/completed`), { method: 'PUT', headers: auth })).status).toBe(200);
    expect((await http(api('/pause'), { method: 'PUT', headers: auth })).status).toBe(200);

    const events = (await eventually(async () => { const e = await queueEvents(); return e.length >= 4 ? e : undefined; }, 5000, 'the audit events'))!;
    expect(events.map((e) => [e.type, e.actor, e.runId, e.data])).toEqual([
      ['queue.paused', 'api:ops', null, { queue: bull }],
      ['queue.resumed', 'api:ops', null, { queue: bull }],
      ['queue.cleaned', 'api:ops', null, { queue: bull, status: 'completed' }],
      ['queue.paused', 'api:ops', null, { queues: [bull] }],
    ]);
    // Removing one job is audited on its run (the reconciler would enqueue the queued step again).
    await eventually(async () => (await engine.drover.getAudit(run.id)).items.some((e) => e.type === 'job.removed'), 5000, 'job.removed');
    const removed = (await engine.drover.getAudit(run.id)).items.find((e) => e.type === 'job.removed')!;
    expect(removed).toMatchObject({ actor: 'api:ops', stepId: step.id, data: { queue: bull, jobId: `${step.id}-g0` } });
  });

  it("bounds the depth of its JSON bodies and answers its errors with drover's shape, logged", async () => {
    const deep = `${'['.repeat(100)}${']'.repeat(100)}`;
    const res = await http(api(`/${queueName()}/obliterate`), { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: deep });
    expect(res.status).toBe(400);
    expect(res.body.error).toEqual({ code: 'invalid_request', message: 'the body nests objects and arrays too deeply (at most 64 levels)' });
    expect(await engine.backend.queue('default').isPaused()).toBe(false);
    if (backend !== 'redis') return;
    // A job whose stored data is not JSON makes BullMQ throw inside Bull Board: a generic answer, and a log line.
    await engine.drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    const run = await engine.drover.createRun({ workflow: 'one' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    const redis = new IORedis(redisUrlFor('redis')!);
    try {
      await redis.hset(`bull:${engine.namespace}.default:${step.id}-g0`, 'data', '{not json');
    } finally {
      redis.disconnect();
    }
    const broken = await http(api(`/${queueName()}/${step.id}-g0`), { headers: auth });
    expect(broken.status).toBe(500);
    expect(broken.body).toEqual({ error: { code: 'internal_error', message: 'internal server error' } });
    expect(logLines.filter((l) => l.includes('Bull Board request failed'))).toHaveLength(1);
  });
});
