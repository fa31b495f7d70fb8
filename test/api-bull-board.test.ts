import { ApiKeyStore } from '../src/auth/api-keys';
import { startServer, type DroverServer } from '../src/http/server';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { describeEachBackend } from './helpers/env';
import { http } from './helpers/server-process';

describeEachBackend('Bull Board over the step queues', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  let auth: Record<string, string>;

  beforeEach(async () => {
    engine = await createEngine(backend);
    auth = { authorization: `Bearer ${(await new ApiKeyStore(engine.sql).create('board')).key}` };
    server = await startServer({ drover: engine.drover, port: 0, queueRefreshIntervalMs: 100, bullBoard: 'readwrite' });
  });
  afterEach(async () => {
    await server.close();
    await engine.close();
  });

  const queueNames = async () => {
    const res = await http(`${server.url}/admin/queues/api/queues`, { headers: auth });
    expect(res.status).toBe(200);
    return res.body.queues.map((q: { name: string }) => q.name).sort() as string[];
  };

  it('shows the queues of workflows registered after it started', async () => {
    expect(await queueNames()).toEqual([`${engine.namespace}.default`]);
    await engine.drover.registerWorkflows([{ name: 'late', steps: [{ name: 's', processor: 'p', queue: 'gpu' }, { name: 't', processor: 'p', queue: 'io', dependsOn: ['s'] }] }]);
    await eventually(async () => (await queueNames()).length === 3, 10_000, 'the new queues');
    expect(await queueNames()).toEqual([`${engine.namespace}.default`, `${engine.namespace}.gpu`, `${engine.namespace}.io`]);
  });

  it('names jobs <workflow>/<step>, with the run, step and workflow in their data and a link back to the run', async () => {
    await engine.drover.registerWorkflows([{ name: 'shop', steps: [{ name: 'charge', processor: 'p' }] }]);
    const run = await engine.drover.createRun({ workflow: 'shop' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    const path = engine.drover.queues.jobPath('default', step.id, 0);
    expect(path).toBe(`/admin/queues/queue/${encodeURIComponent(`${engine.namespace}.default`)}/${step.id}-g0`);
    const name = encodeURIComponent(`${engine.namespace}.default`);
    const listed = await http(`${server.url}/admin/queues/api/queues?activeQueue=${name}&status=latest`, { headers: auth });
    const job = listed.body.queues.find((q: { name: string }) => q.name === `${engine.namespace}.default`).jobs[0];
    expect(job.name).toBe('shop/charge');
    expect(job.id).toBe(`${step.id}-g0`);
    expect(job.data).toEqual({ runId: run.id, stepId: step.id, generation: 0, processor: 'p', workflow: 'shop', step: 'charge', runPath: `/runs/${run.id}` });
    expect(job.externalUrl).toEqual({ displayText: `run ${run.id.slice(0, 8)} in drover`, href: `/runs/${run.id}` });
    // The job's page (the path the dashboard links to) is Bull Board's UI.
    const page = await http(`${server.url}${path}`, { headers: auth });
    expect(page.status).toBe(200);
  });

  it('is read-write when asked: an operator can pause and resume a queue, and sees the jobs of a run', async () => {
    await engine.drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    const run = await engine.drover.createRun({ workflow: 'one' });
    const name = encodeURIComponent(`${engine.namespace}.default`);
    const paused = await http(`${server.url}/admin/queues/api/queues/${name}/pause`, { method: 'PUT', headers: auth });
    expect(paused.status).toBe(200);
    expect(await engine.backend.queue('default').isPaused()).toBe(true);
    await http(`${server.url}/admin/queues/api/queues/${name}/resume`, { method: 'PUT', headers: auth });
    expect(await engine.backend.queue('default').isPaused()).toBe(false);
    const listed = await http(`${server.url}/admin/queues/api/queues?activeQueue=${name}&status=latest`, { headers: auth });
    const queue = listed.body.queues.find((q: { name: string }) => q.name === `${engine.namespace}.default`);
    expect(queue.readOnlyMode).toBe(false);
    const jobs = queue.jobs.map((j: { data: { runId: string } }) => j.data.runId);
    expect(jobs).toContain(run.id);
    // Without a key, Bull Board's own API is closed too.
    expect((await http(`${server.url}/admin/queues/api/queues/${name}/pause`, { method: 'PUT' })).status).toBe(401);
    expect(await engine.backend.queue('default').isPaused()).toBe(false);
  });
});
