import { ApiKeyStore } from '../src/auth/api-keys';
import { startServer, type DroverServer } from '../src/http/server';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend } from './helpers/env';
import { fatal } from './helpers/fixtures';
import { http } from './helpers/server-process';

/** Bull Board is read-only by default, and drover enforces it on Bull Board's API, not only by hiding buttons. */
describeEachBackend('Bull Board, read-only (the default)', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  let auth: Record<string, string>;

  beforeEach(async () => {
    engine = await createEngine(backend);
    auth = { authorization: `Bearer ${(await new ApiKeyStore(engine.sql).create('viewer')).key}` };
    server = await startServer({ drover: engine.drover, port: 0, queueRefreshIntervalMs: 100 });
  });
  afterEach(async () => {
    await server.close();
    await engine.close();
  });

  const READ_ONLY = {
    error: {
      code: 'forbidden',
      message: "Bull Board is read-only; set DROVER_BULL_BOARD=readwrite to allow its actions (each is then audited with the key's name)",
    },
  };

  it("refuses a retry of a failed step's job: the job stays failed, the run stays failed, nothing is audited", async () => {
    const wf = { name: 'breaks', steps: [{ name: 'a', processor: 'fatal' }] };
    await engine.startWorker({ workflows: [wf], processors: { fatal } });
    const created = await engine.drover.createRun({ workflow: 'breaks' });
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 10_000 });
    expect(run.status).toBe('failed');
    const jobId = `${run.steps[0].id}-g0`;
    const queue = encodeURIComponent(`${engine.namespace}.default`);
    expect(await engine.backend.queue('default').getJobState(jobId)).toBe('failed');
    const before = (await engine.drover.getAudit(run.id)).items.length;

    const retry = await http(`${server.url}/admin/queues/api/queues/${queue}/${jobId}/retry`, { method: 'PUT', headers: auth });
    expect(retry.status).toBe(403);
    expect(retry.body).toEqual(READ_ONLY);
    expect(await engine.backend.queue('default').getJobState(jobId)).toBe('failed');
    expect((await engine.drover.getRun(run.id)).status).toBe('failed');
    expect((await engine.drover.getAudit(run.id)).items).toHaveLength(before);
  });

  it('refuses every mutating method on its API and shows the queues without buttons', async () => {
    await engine.drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    const run = await engine.drover.createRun({ workflow: 'one' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    const jobId = `${step.id}-g0`;
    const queue = encodeURIComponent(`${engine.namespace}.default`);
    const base = `${server.url}/admin/queues/api/queues`;
    const attempts: Array<[string, string, unknown?]> = [
      ['PUT', `${base}/${queue}/pause`],
      ['PUT', `${base}/pause`],
      ['PUT', `${base}/${queue}/empty`],
      ['PUT', `${base}/${queue}/obliterate`, { force: true }],
      ['PUT', `${base}/${queue}/clean/waiting`],
      ['PUT', `${base}/${queue}/promote`],
      ['PUT', `${base}/${queue}/${jobId}/promote`],
      ['PUT', `${base}/${queue}/${jobId}/clean`],
      ['PATCH', `${base}/${queue}/${jobId}/update-data`, { data: { runId: run.id, stepId: step.id, generation: 0 } }],
      ['POST', `${base}/${queue}/add`, { name: 'x', data: {} }],
      ['DELETE', `${base}/${queue}`],
      ['POST', `${server.url}/admin/queues`],
    ];
    for (const [method, url, json] of attempts) {
      const res = await http(url, { method, headers: auth, json });
      expect([method, url, res.status]).toEqual([method, url, 403]);
      expect(res.body).toEqual(READ_ONLY);
    }
    const q = engine.backend.queue('default');
    expect(await q.isPaused()).toBe(false);
    expect(await q.getJobState(jobId)).toBe('waiting');
    expect((await q.getJob(jobId))!.data).toMatchObject({ runId: run.id, stepId: step.id, workflow: 'one', step: 's' });

    const listed = await http(`${base}?activeQueue=${queue}&status=latest`, { headers: auth });
    expect(listed.status).toBe(200);
    const shown = listed.body.queues.find((x: { name: string }) => x.name === `${engine.namespace}.default`);
    expect(shown.readOnlyMode).toBe(true);
    expect(shown.allowRetries).toBe(false);
    expect(shown.jobs.map((j: { name: string }) => j.name)).toEqual(['one/s']);
    // Reading a job and its logs stays open.
    expect((await http(`${base}/${queue}/${jobId}`, { headers: auth })).status).toBe(200);
  });
});
