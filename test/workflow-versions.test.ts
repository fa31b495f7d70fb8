import { jobIdOf } from '../src/queue/dispatcher';
import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';

describeEachBackend('workflow versions', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const v1 = { name: 'deploy', steps: [{ name: 'a', processor: 'p1' }] };
  const v2 = { name: 'deploy', steps: [{ name: 'a', processor: 'p2' }] };
  const v3 = { name: 'deploy', steps: [{ name: 'a', processor: 'p2' }, { name: 'b', processor: 'p2', dependsOn: ['a'] }] };
  const current = async () => (await engine.drover.listWorkflows()).find((w) => w.name === 'deploy')!.steps.map((s) => `${s.name}:${s.processor}`);

  it('a version becomes current when a new hash is registered, never when a known one is registered again', async () => {
    await engine.drover.registerWorkflows([v1]);
    await engine.drover.registerWorkflows([v2]);
    expect(await current()).toEqual(['a:p2']);
    // An old pod restarts (or crash-loops) with v1: v2 stays current.
    await engine.drover.registerWorkflows([v1]);
    await engine.drover.registerWorkflows([v1]);
    expect(await current()).toEqual(['a:p2']);
    const run = await engine.drover.createRun({ workflow: 'deploy' });
    expect((await engine.drover.getRun(run.id)).steps.map((s) => s.processor)).toEqual(['p2']);
    // A new definition becomes current; the run keeps the version it started with.
    await engine.drover.registerWorkflows([v3]);
    expect(await current()).toEqual(['a:p2', 'b:p2']);
    await engine.startWorker({ workflows: [v3], processors: { p2: async () => 'done' } });
    const done = await engine.drover.waitForRun(run.id);
    expect(done.status).toBe('succeeded');
    expect(done.steps.map((s) => s.name)).toEqual(['a']);
  });

  it('a worker without the step\'s processor leaves the job, burns no attempt, and the run says why the step waits', async () => {
    await engine.startWorker({ id: 'old-pod', workflows: [v1], processors: { p1: async () => 'old' } });
    await engine.drover.registerWorkflows([v2]);
    const run = await engine.drover.createRun({ workflow: 'deploy' });
    const stepId = (await engine.drover.getRun(run.id)).steps[0].id;
    // The old worker took the job and put it back (delayed) without a transition.
    const queue = engine.backend.queue('default');
    await eventually(async () => (await queue.getJob(jobIdOf(stepId, 0)))?.attemptsStarted! >= 1 && (await queue.getJobState(jobIdOf(stepId, 0))) === 'delayed', 10_000, 'the old worker to return the job');
    const waiting = await engine.drover.getRun(run.id);
    expect(waiting.steps[0]).toMatchObject({ status: 'queued', attempts: 0, waitingFor: 'no live worker has processor p2 for queue default' });
    expect((await engine.drover.getAudit(run.id)).items.filter((e) => e.type.startsWith('step.') && e.type !== 'step.queued')).toEqual([]);

    await engine.startWorker({ id: 'new-pod', workflows: [v2], processors: { p2: async () => 'new' } });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done).toMatchObject({ status: 'succeeded', output: { a: 'new' } });
    expect(done.steps[0]).toMatchObject({ attempts: 1 });
    expect(done.steps[0].waitingFor).toBeUndefined();
  });
});
