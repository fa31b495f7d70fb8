import { describeEachBackend } from './helpers/env';
import { createEngine, sleep, type EngineHarness } from './helpers/engine';
import { emptyQueue, waitForEvent } from './helpers/waits';
import type { WorkflowDefinition } from '../src/types';

const FAST_RECONCILER = { intervalMs: 200, queuedGraceMs: 300, heartbeatTimeoutMs: 1500 };

const napping: WorkflowDefinition = {
  name: 'napping',
  steps: [
    { name: 'before', processor: 'stamp' },
    { name: 'nap', sleep: { ms: 2500 }, dependsOn: ['before'] },
    { name: 'after', processor: 'stamp', dependsOn: ['nap'] },
  ],
};
const alarm: WorkflowDefinition = {
  name: 'alarm',
  steps: [{ name: 'nap', sleep: { until: 'input.at' } }, { name: 'after', processor: 'stamp', dependsOn: ['nap'] }],
};
const approval: WorkflowDefinition = {
  name: 'approval',
  steps: [
    { name: 'prepare', processor: 'stamp' },
    { name: 'approve', waitFor: { signal: 'approved' }, dependsOn: ['prepare'] },
    { name: 'ship', processor: 'stamp', dependsOn: ['approve'] },
  ],
};
const deadline: WorkflowDefinition = {
  name: 'deadline',
  steps: [{ name: 'approve', waitFor: { signal: 'approved', timeoutMs: 800 } }, { name: 'ship', processor: 'stamp', dependsOn: ['approve'] }],
};
const processors = {
  stamp: async (ctx: any) => ({ at: Date.now(), parents: ctx.parents }),
};

describeEachBackend('durable sleep', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('wakes on time with no worker slot held, and outputs sleptMs', async () => {
    // One slot: if the sleep held it, the other run's step could not run meanwhile.
    const quick: WorkflowDefinition = { name: 'quick', steps: [{ name: 'only', processor: 'stamp' }] };
    await engine.startWorker({ workflows: [napping, quick], processors, concurrency: 1 });
    const run = await engine.drover.createRun({ workflow: 'napping' });
    await waitForEvent(engine, run.id, 'step.sleeping', 'nap');
    const other = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'quick' })).id, { timeoutMs: 2000 });
    expect(other.status).toBe('succeeded');
    expect((await engine.drover.getRun(run.id)).steps.find((s) => s.name === 'nap')!.status).toBe('queued');
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('succeeded');
    const nap = done.steps.find((s) => s.name === 'nap')!;
    expect((nap.output as any).sleptMs).toBeGreaterThanOrEqual(2500);
    const before = (done.steps.find((s) => s.name === 'before')!.output as any).at;
    const after = (done.steps.find((s) => s.name === 'after')!.output as any).at;
    expect(after - before).toBeGreaterThanOrEqual(2500);
    expect(after - before).toBeLessThan(6000);
  });

  it('sleeps until a time taken from the input, and fails clearly on one that is not a time', async () => {
    await engine.startWorker({ workflows: [alarm], processors });
    const at = new Date(Date.now() + 1500).toISOString();
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'alarm', input: { at } })).id, { timeoutMs: 20_000 });
    expect(run.status).toBe('succeeded');
    expect((run.steps.find((s) => s.name === 'after')!.output as any).at).toBeGreaterThanOrEqual(Date.parse(at));
    const bad = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'alarm', input: { at: 'tomorrow-ish' } })).id, { timeoutMs: 20_000 });
    expect(bad.status).toBe('failed');
    expect(bad.steps.find((s) => s.name === 'nap')!.error).toMatchObject({ code: 'invalid_sleep', message: expect.stringContaining('sleep.until "input.at" is not an ISO time') });
  });

  it('survives an emptied queue and a worker restart, and still wakes on time', async () => {
    const first = await engine.startWorker({ workflows: [napping], processors, reconciler: false });
    const run = await engine.drover.createRun({ workflow: 'napping' });
    await waitForEvent(engine, run.id, 'step.sleeping', 'nap');
    const sleptFrom = Date.now();
    await first.close();
    await emptyQueue(engine);
    // The job is gone: only Postgres knows the step sleeps. A new worker (with the reconciler) takes over.
    await engine.startWorker({ workflows: [napping], processors, reconciler: FAST_RECONCILER });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('succeeded');
    const after = (done.steps.find((s) => s.name === 'after')!.output as any).at;
    // Woke no earlier than asked, and not long after (the reconciler's pass and grace, not a lost wake-up).
    expect(after - sleptFrom).toBeGreaterThanOrEqual(2500 - 200);
    expect(after - sleptFrom).toBeLessThan(6000);
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.filter((e) => e.type === 'step.succeeded' && e.stepName === 'nap')).toHaveLength(1);
  });
});

describeEachBackend('signals', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('ends the waiting step with the payload of a signal sent during the wait', async () => {
    await engine.startWorker({ workflows: [approval], processors });
    const run = await engine.drover.createRun({ workflow: 'approval' });
    await waitForEvent(engine, run.id, 'step.waiting', 'approve');
    const sent = await engine.drover.signal(run.id, 'approved', { by: 'ada' }, { actor: 'api:reviewer' });
    expect(sent).toMatchObject({ runId: run.id, signal: 'approved', first: true, delivered: ['approve'], actor: 'api:reviewer' });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 });
    expect(done.status).toBe('succeeded');
    expect(done.steps.find((s) => s.name === 'approve')!.output).toEqual({ by: 'ada' });
    expect((done.steps.find((s) => s.name === 'ship')!.output as any).parents.approve).toEqual({ by: 'ada' });
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.find((e) => e.type === 'run.signal_received')).toMatchObject({ actor: 'api:reviewer', data: { signal: 'approved', first: true } });
  });

  it('keeps a signal sent before the step waits, and the first one wins', async () => {
    const gate = { open: false };
    await engine.startWorker({
      workflows: [approval],
      processors: { stamp: async (ctx: any) => { while (ctx.step.name === 'prepare' && !gate.open) await sleep(20); return { parents: ctx.parents }; } },
    });
    const run = await engine.drover.createRun({ workflow: 'approval' });
    const first = await engine.drover.signal(run.id, 'approved', 'first');
    const second = await engine.drover.signal(run.id, 'approved', 'second');
    expect(first).toMatchObject({ first: true, delivered: [] });
    expect(second).toMatchObject({ first: false, delivered: [] });
    gate.open = true;
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 });
    expect(done.status).toBe('succeeded');
    expect(done.steps.find((s) => s.name === 'approve')!.output).toBe('first');
  });

  it('refuses a signal after the run finished, and for an unknown run', async () => {
    await engine.startWorker({ workflows: [approval], processors });
    const run = await engine.drover.createRun({ workflow: 'approval' });
    await waitForEvent(engine, run.id, 'step.waiting', 'approve');
    await engine.drover.signal(run.id, 'approved', true);
    await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 });
    await expect(engine.drover.signal(run.id, 'approved', true)).rejects.toMatchObject({ code: 'invalid_state' });
    await expect(engine.drover.signal('00000000-0000-4000-8000-000000000000', 'approved')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('fails the step with a clear error when the signal does not come within timeoutMs', async () => {
    await engine.startWorker({ workflows: [deadline], processors });
    const started = Date.now();
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'deadline' })).id, { timeoutMs: 10_000 });
    expect(run.status).toBe('failed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    expect(run.steps.map((s) => [s.name, s.status])).toEqual([['approve', 'failed'], ['ship', 'skipped']]);
    expect(run.steps[0].error).toMatchObject({ code: 'signal_timeout', message: 'signal "approved" did not arrive within 800 ms' });
  });

  it('ends a wait whose job was lost when the signal arrives', async () => {
    const worker = await engine.startWorker({ workflows: [approval], processors, reconciler: false });
    const run = await engine.drover.createRun({ workflow: 'approval' });
    await waitForEvent(engine, run.id, 'step.waiting', 'approve');
    await worker.close();
    await emptyQueue(engine);
    const sent = await engine.drover.signal(run.id, 'approved', 7);
    expect(sent.delivered).toEqual(['approve']);
    await engine.startWorker({ workflows: [approval], processors, reconciler: FAST_RECONCILER });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 15_000 });
    expect(done.status).toBe('succeeded');
    expect(done.steps.find((s) => s.name === 'approve')!.output).toBe(7);
  });
});
