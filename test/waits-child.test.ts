import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, reconcilerFor, sleep, type EngineHarness } from './helpers/engine';
import { Calls, fatal } from './helpers/fixtures';
import type { WorkflowDefinition } from '../src/types';
import { emptyQueue } from './helpers/waits';

const child: WorkflowDefinition = { name: 'child', steps: [{ name: 'work', processor: 'work' }] };
const parent: WorkflowDefinition = {
  name: 'parent',
  steps: [
    { name: 'plan', processor: 'plan' },
    { name: 'delegate', run: { workflow: 'child', input: 'plan.task' }, dependsOn: ['plan'] },
    { name: 'report', processor: 'report', dependsOn: ['delegate'] },
  ],
};

describeEachBackend('child runs', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const processors = (calls: Calls, mode: { fail?: boolean; hang?: boolean } = {}) => ({
    plan: async (ctx: any) => ({ task: { n: ctx.input.n ?? 2 } }),
    work: async (ctx: any) => {
      calls.record(ctx.run.id);
      if (mode.fail) return fatal(ctx);
      while (mode.hang && !ctx.signal.aborted) await sleep(20);
      return { doubled: ctx.input.n * 2 };
    },
    report: async (ctx: any) => ({ got: ctx.parents.delegate }),
  });

  it('starts one child run, takes its output, and links parent and child both ways', async () => {
    const calls = new Calls();
    await engine.startWorker({ workflows: [parent, child], processors: processors(calls) });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'parent', input: { n: 21 } })).id, { timeoutMs: 20_000 });
    expect(run.status).toBe('succeeded');
    expect(run.steps.find((s) => s.name === 'delegate')!.output).toEqual({ work: { doubled: 42 } });
    expect(run.steps.find((s) => s.name === 'report')!.output).toEqual({ got: { work: { doubled: 42 } } });
    expect(run.children).toHaveLength(1);
    const [kid] = run.children!;
    expect(kid).toMatchObject({ workflow: 'child', status: 'succeeded', step: 'delegate' });
    expect(run.steps.find((s) => s.name === 'delegate')!.childRunId).toBe(kid.id);
    const childRun = await engine.drover.getRun(kid.id);
    expect(childRun).toMatchObject({ parentRunId: run.id, parentStepId: run.steps.find((s) => s.name === 'delegate')!.id, input: { n: 21 } });
    expect(calls.total()).toBe(1);
  });

  it('fails the parent step with the child\'s error when the child fails', async () => {
    await engine.startWorker({ workflows: [parent, child], processors: processors(new Calls(), { fail: true }) });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'parent' })).id, { timeoutMs: 20_000 });
    expect(run.status).toBe('failed');
    const delegate = run.steps.find((s) => s.name === 'delegate')!;
    expect(delegate.status).toBe('failed');
    expect(delegate.error).toMatchObject({ code: 'child_failed', childRunId: run.children![0].id });
    expect((delegate.error as any).message).toMatch(/^child run [0-9a-f-]+ \(child\) failed: failed steps: work$/);
    expect(run.steps.find((s) => s.name === 'report')!.status).toBe('skipped');
    expect(run.children![0].status).toBe('failed');
  });

  it('cancels the child when the parent is cancelled', async () => {
    await engine.startWorker({ workflows: [parent, child], processors: processors(new Calls(), { hang: true }) });
    const created = await engine.drover.createRun({ workflow: 'parent' });
    const kidId: string = await eventually(async () => (await engine.drover.getRun(created.id)).children?.[0]?.id ?? '', 20_000, 'the child run');
    await eventually(async () => (await engine.drover.getRun(kidId)).steps[0].status === 'running', 20_000, 'the child working');
    await engine.drover.cancelRun(created.id, { actor: 'test' });
    const kid = await engine.drover.waitForRun(kidId, { timeoutMs: 10_000 });
    expect(kid.status).toBe('cancelled');
    expect(kid.steps[0].status).toBe('cancelled');
    expect((await engine.drover.getRun(created.id)).status).toBe('cancelled');
  });

  it('never starts a second child when the step\'s job is lost and replayed while the child runs', async () => {
    let release = false;
    const calls = new Calls();
    await engine.startWorker({
      workflows: [parent, child],
      processors: { ...processors(calls), work: async (ctx: any) => { calls.record(ctx.run.id); while (!release) await sleep(20); return { doubled: ctx.input.n * 2 }; } },
    });
    const created = await engine.drover.createRun({ workflow: 'parent', input: { n: 5 } });
    const kidId: string = await eventually(async () => (await engine.drover.getRun(created.id)).children?.[0]?.id ?? '', 20_000, 'the child run');
    await eventually(async () => (await engine.drover.getRun(kidId)).steps[0].status === 'running', 20_000, 'the child working');
    // Every job lost (the waiting step's and the child's), then re-created by the reconciler: the step's job runs again.
    await emptyQueue(engine);
    expect((await reconcilerFor(engine).reconcile()).ran).toBe(true);
    await sleep(500);
    release = true;
    await eventually(async () => (await reconcilerFor(engine).reconcile()) && (await engine.drover.getRun(created.id)).status !== 'running', 20_000, 'the parent to finish');
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 20_000 });
    expect(run.status).toBe('succeeded');
    expect(run.steps.find((s) => s.name === 'report')!.output).toEqual({ got: { work: { doubled: 10 } } });
    const kids = await engine.sql.query(`SELECT id FROM drover.runs WHERE parent_run_id = $1`, [created.id]);
    expect(kids.map((k) => k.id)).toEqual([kidId]);
    const started = (await engine.drover.getAudit(created.id)).items.filter((e) => e.type === 'step.child_started');
    expect(started).toHaveLength(1);
  });

  it('fails the step clearly when the child workflow is unknown', async () => {
    const orphan: WorkflowDefinition = { name: 'orphan', steps: [{ name: 'delegate', run: { workflow: 'nowhere' } }] };
    await engine.startWorker({ workflows: [orphan], processors: {} });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'orphan' })).id, { timeoutMs: 20_000 });
    expect(run.status).toBe('failed');
    expect(run.steps[0].error).toMatchObject({ code: 'unknown_workflow', message: expect.stringContaining('the child run of workflow "nowhere" could not start') });
  });
});
