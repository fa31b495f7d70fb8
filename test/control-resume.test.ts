import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { Calls, echo } from './helpers/fixtures';

describeEachBackend('resume (retryRun)', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('completes a failed run without re-executing the steps that succeeded', async () => {
    const calls = new Calls();
    let healthy = false;
    const wf = {
      name: 'resumable',
      steps: [
        { name: 'a', processor: 'echo' },
        { name: 'b', processor: 'echo', dependsOn: ['a'] },
        { name: 'c', processor: 'fragile', dependsOn: ['a'], attempts: 1 },
        { name: 'd', processor: 'echo', dependsOn: ['b', 'c'] },
      ],
    };
    await engine.startWorker({
      workflows: [wf],
      processors: {
        echo: echo(calls),
        fragile: async (ctx) => { calls.record(ctx.step.name); if (!healthy) throw new Error('dependency down'); return { fixed: true }; },
      },
    });
    const first = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'resumable' })).id);
    expect(first.status).toBe('failed');
    expect(first.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'failed', 'skipped']);
    // Healthy before the resume: the worker may pick the re-queued step up before retryRun returns.
    healthy = true;
    const resumed = await engine.drover.retryRun(first.id);
    expect(['running', 'succeeded']).toContain(resumed.status);
    const run = await engine.drover.waitForRun(first.id);
    expect(run.status).toBe('succeeded');
    expect(run.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['a', 'succeeded', 1], ['b', 'succeeded', 1], ['c', 'succeeded', 1], ['d', 'succeeded', 1],
    ]);
    expect([calls.get('a'), calls.get('b'), calls.get('c'), calls.get('d')]).toEqual([1, 1, 2, 1]);
    expect(run.output).toEqual({ d: { step: 'd', parents: { b: expect.any(Object), c: { fixed: true } } } });
    const audit = (await engine.drover.getAudit(run.id)).items.map((e) => e.type);
    expect(audit.filter((t) => t === 'run.retried')).toHaveLength(1);
    expect(audit.indexOf('run.failed')).toBeLessThan(audit.indexOf('run.retried'));
    expect(audit[audit.length - 1]).toBe('run.succeeded');
    await expect(engine.drover.retryRun(run.id)).rejects.toMatchObject({ name: 'InvalidStateError', code: 'invalid_state' });
  });

  it('resumes a cancelled run from where it stopped', async () => {
    const calls = new Calls();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const wf = { name: 'gated', steps: [{ name: 'a', processor: 'echo' }, { name: 'b', processor: 'gate', dependsOn: ['a'] }] };
    await engine.startWorker({
      workflows: [wf],
      processors: { echo: echo(calls), gate: async (ctx) => { calls.record('b'); await Promise.race([gate, new Promise((_, rej) => ctx.signal.addEventListener('abort', () => rej(ctx.signal.reason)))]); return 'open'; } },
    });
    const created = await engine.drover.createRun({ workflow: 'gated' });
    await eventually(async () => (await engine.drover.getRun(created.id)).steps[1].status === 'running', 10_000, 'b running');
    await engine.drover.cancelRun(created.id);
    release();
    await engine.drover.retryRun(created.id);
    const run = await engine.drover.waitForRun(created.id);
    expect(run.status).toBe('succeeded');
    expect(calls.get('a')).toBe(1);
    expect(calls.get('b')).toBe(2);
    expect(run.output).toEqual({ b: 'open' });
  });

  it('a run cancelled before it started goes back to pending on resume, and its first start writes run.started and startedAt', async () => {
    const wf = { name: 'never-started', steps: [{ name: 'only', processor: 'echo' }] };
    await engine.drover.registerWorkflows([wf]);
    // No worker yet: the run stays pending, then is cancelled before any step started.
    const created = await engine.drover.createRun({ workflow: 'never-started' });
    expect((await engine.drover.cancelRun(created.id)).status).toBe('cancelled');
    const resumed = await engine.drover.retryRun(created.id);
    expect(resumed).toMatchObject({ status: 'pending', startedAt: null });
    await engine.startWorker({ workflows: [wf], processors: { echo: echo() } });
    const run = await engine.drover.waitForRun(created.id);
    expect(run.status).toBe('succeeded');
    expect(run.startedAt).not.toBeNull();
    expect(Date.parse(run.startedAt!)).toBeLessThanOrEqual(Date.parse(run.finishedAt!));
    const types = (await engine.drover.getAudit(created.id)).items.map((e) => e.type);
    expect(types.slice(types.indexOf('run.retried'))).toEqual(expect.arrayContaining(['run.retried', 'step.queued', 'run.succeeded']));
    // Started once after the resume: with its own run.started, or inside run.succeeded's startedAt (a quick single-step run).
    const succeeded = (await engine.drover.getAudit(created.id)).items.find((e) => e.type === 'run.succeeded');
    expect(types.includes('run.started') || Boolean((succeeded?.data as { startedAt?: string } | null)?.startedAt)).toBe(true);
  });
});
