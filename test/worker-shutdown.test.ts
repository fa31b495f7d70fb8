import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { sleep } from './helpers/fixtures';

describeEachBackend('graceful shutdown', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const wf = { name: 'drain', steps: [{ name: 'a', processor: 'slow' }, { name: 'b', processor: 'slow', dependsOn: ['a'] }] };
  const stepStatus = async (runId: string, name: string) =>
    (await engine.sql.query(`SELECT status FROM drover.steps WHERE run_id = $1 AND name = $2`, [runId, name]))[0].status;

  it('lets the active step finish, takes no new job, and marks the worker stopped', async () => {
    // Written running after 100 ms, so the test sees the active step.
    const worker = await engine.startWorker({
      workflows: [wf], recordStartAfterMs: 100, processors: { slow: async (ctx) => { await sleep(800, ctx.signal); return ctx.step.name; } },
    });
    const run = await engine.drover.createRun({ workflow: 'drain' });
    await eventually(async () => (await stepStatus(run.id, 'a')) === 'running', 10_000, 'a running');
    await worker.close();
    expect(await stepStatus(run.id, 'a')).toBe('succeeded');
    // b became ready while the worker drained; nobody took it.
    expect(await stepStatus(run.id, 'b')).toBe('queued');
    expect((await engine.drover.listWorkers()).find((w) => w.id === worker.id)?.status).toBe('stopped');

    await engine.startWorker({ workflows: [wf], processors: { slow: async () => 'fresh' } });
    expect((await engine.drover.waitForRun(run.id)).status).toBe('succeeded');
  });

  it('past the grace period leaves the step to another worker without writing a result', async () => {
    const timing = { lockDurationMs: 1500, stalledIntervalMs: 500 };
    let aborted = false;
    const stubborn = await engine.startWorker({
      ...timing, gracePeriodMs: 300, workflows: [wf],
      processors: { slow: async (ctx) => { try { await sleep(5000, ctx.signal); } catch { aborted = true; await sleep(1000); } return 'too late'; } },
    });
    const run = await engine.drover.createRun({ workflow: 'drain' });
    await eventually(async () => (await stepStatus(run.id, 'a')) === 'running', 10_000, 'a running');
    await stubborn.close();
    expect(aborted).toBe(true);
    expect(await stepStatus(run.id, 'a')).toBe('running');

    await engine.startWorker({ ...timing, workflows: [wf], processors: { slow: async (ctx) => `done by the second worker (attempt ${ctx.step.attempt})` } });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 30_000 });
    expect(done.status).toBe('succeeded');
    expect(done.steps[0].output).toMatch(/^done by the second worker/);
    const succeeded = (await engine.drover.getAudit(run.id)).items.filter((e) => e.type === 'step.succeeded' && e.stepId === done.steps[0].id);
    expect(succeeded).toHaveLength(1);
  }, 45_000);
});
