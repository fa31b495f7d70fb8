import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { fatal } from './helpers/fixtures';
import type { JoinPolicy, WorkflowDefinition } from '../src/types';

/** Two parents (one may fail) and a joining step of each policy. */
function joinWorkflow(name: string, join: JoinPolicy, failing: boolean): WorkflowDefinition {
  return {
    name,
    steps: [
      { name: 'ok', processor: 'ok' },
      { name: 'bad', processor: failing ? 'fatal' : 'ok' },
      { name: 'joined', processor: 'collect', dependsOn: ['ok', 'bad'], join },
      { name: 'after', processor: 'collect', dependsOn: ['joined'] },
    ],
  };
}

const processors = {
  ok: async (ctx: any) => ({ from: ctx.step.name }),
  fatal,
  collect: async (ctx: any) => ({ parents: ctx.parents }),
};

describeEachBackend('join policies', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const run = async (wf: WorkflowDefinition) => {
    const created = await engine.drover.createRun({ workflow: wf.name });
    const done = await engine.drover.waitForRun(created.id, { timeoutMs: 20_000 });
    return { run: done, status: Object.fromEntries(done.steps.map((s) => [s.name, s.status])), step: (n: string) => done.steps.find((s) => s.name === n)! };
  };

  it('all_succeeded (the default) skips the join when a parent fails, and runs it when both succeed', async () => {
    const failing = joinWorkflow('join-all-bad', 'all_succeeded', true);
    const passing = joinWorkflow('join-all-good', 'all_succeeded', false);
    await engine.startWorker({ workflows: [failing, passing], processors });
    const a = await run(failing);
    expect(a.status).toEqual({ ok: 'succeeded', bad: 'failed', joined: 'skipped', after: 'skipped' });
    expect(a.run.status).toBe('failed');
    const b = await run(passing);
    expect(b.status).toEqual({ ok: 'succeeded', bad: 'succeeded', joined: 'succeeded', after: 'succeeded' });
    expect(b.step('joined').output).toEqual({ parents: { ok: { from: 'ok' }, bad: { from: 'bad' } } });
  });

  it('all_settled runs once every parent is terminal and sees each parent\'s status, output and error', async () => {
    const failing = joinWorkflow('join-settled-bad', 'all_settled', true);
    const passing = joinWorkflow('join-settled-good', 'all_settled', false);
    await engine.startWorker({ workflows: [failing, passing], processors });
    const a = await run(failing);
    expect(a.status).toEqual({ ok: 'succeeded', bad: 'failed', joined: 'succeeded', after: 'succeeded' });
    const parents = (a.step('joined').output as any).parents;
    expect(parents.ok).toEqual({ status: 'succeeded', output: { from: 'ok' }, error: null });
    expect(parents.bad.status).toBe('failed');
    expect(parents.bad.output).toBeNull();
    expect(parents.bad.error.message).toBe('fatal failure');
    // A step failed for good, so the run still ends failed (CONTRACT §2), after the join ran.
    expect(a.run.status).toBe('failed');
    const b = await run(passing);
    expect(b.run.status).toBe('succeeded');
    expect((b.step('joined').output as any).parents.bad).toEqual({ status: 'succeeded', output: { from: 'bad' }, error: null });
  });

  it('any_succeeded runs once one parent succeeded, and is skipped when every parent failed', async () => {
    const oneFails = joinWorkflow('join-any-one', 'any_succeeded', true);
    const allFail: WorkflowDefinition = {
      name: 'join-any-none',
      steps: [
        { name: 'x', processor: 'fatal' }, { name: 'y', processor: 'fatal' },
        { name: 'joined', processor: 'collect', dependsOn: ['x', 'y'], join: 'any_succeeded' as const },
        { name: 'after', processor: 'collect', dependsOn: ['joined'] },
      ],
    };
    const bothSucceed = joinWorkflow('join-any-both', 'any_succeeded', false);
    await engine.startWorker({ workflows: [oneFails, allFail, bothSucceed], processors });
    const a = await run(oneFails);
    expect(a.status).toEqual({ ok: 'succeeded', bad: 'failed', joined: 'succeeded', after: 'succeeded' });
    expect((a.step('joined').output as any).parents.ok).toEqual({ from: 'ok' });
    const b = await run(allFail as any);
    expect(b.status).toEqual({ x: 'failed', y: 'failed', joined: 'skipped', after: 'skipped' });
    expect(b.run.status).toBe('failed');
    const c = await run(bothSucceed);
    expect(c.status.joined).toBe('succeeded');
    expect(c.run.status).toBe('succeeded');
  });

  it('runs the workflow\'s onFailure step once after the run failed, with ctx.failure', async () => {
    const seen: any[] = [];
    const wf = {
      name: 'with-on-failure',
      onFailure: { processor: 'alert' },
      steps: [{ name: 'ok', processor: 'ok' }, { name: 'bad', processor: 'fatal', dependsOn: ['ok'] }],
    };
    const fine = { name: 'fine-on-failure', onFailure: 'alert', steps: [{ name: 'ok', processor: 'ok' }] };
    await engine.startWorker({
      workflows: [wf, fine],
      processors: { ...processors, alert: async (ctx: any) => { seen.push({ run: ctx.run.id, failure: ctx.failure }); return { alerted: true }; } },
    });
    const failed = await run(wf as any);
    expect(failed.run.status).toBe('failed');
    const settled = await (async () => {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const r = await engine.drover.getRun(failed.run.id);
        const step = r.steps.find((s) => s.name === 'onFailure');
        if (step?.status === 'succeeded' || Date.now() > deadline) return r;
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    expect(settled.status).toBe('failed');
    expect(settled.steps.find((s) => s.name === 'onFailure')).toMatchObject({ status: 'succeeded', output: { alerted: true }, attempts: 1 });
    expect(seen).toHaveLength(1);
    expect(seen[0].run).toBe(failed.run.id);
    expect(seen[0].failure.steps).toEqual([{ name: 'bad', error: expect.objectContaining({ message: 'fatal failure' }) }]);
    expect(seen[0].failure.error.failedSteps).toEqual(['bad']);
    // A run that succeeds never runs it.
    const ok = await run(fine as any);
    expect(ok.run.status).toBe('succeeded');
    expect(ok.run.steps.map((s) => s.name)).toEqual(['ok']);
    await new Promise((res) => setTimeout(res, 300));
    expect(seen).toHaveLength(1);
  });
});
