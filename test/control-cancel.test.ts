import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, sleep, type EngineHarness } from './helpers/engine';
import { Calls } from './helpers/fixtures';

const wf = {
  name: 'cancellable',
  steps: [
    { name: 'long', processor: 'long' },
    { name: 'after', processor: 'noop', dependsOn: ['long'] },
    { name: 'side', processor: 'noop', delayMs: 60_000 },
  ],
};

describeEachBackend('cancel', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('aborts a running step, discards its late return and removes queued jobs', async () => {
    const calls = new Calls();
    let sawAbort = false;
    let returned = false;
    await engine.startWorker({
      workflows: [wf],
      processors: {
        // Ignores the deadline on purpose: returns a value after seeing the abort.
        long: async (ctx) => {
          calls.record('long');
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { sawAbort = true; resolve(); }, { once: true }));
          await sleep(200);
          returned = true;
          return { late: true };
        },
        noop: async (ctx) => { calls.record(ctx.step.name); return null; },
      },
    });
    const created = await engine.drover.createRun({ workflow: 'cancellable' });
    await eventually(async () => (await engine.drover.getRun(created.id)).steps[0].status === 'running', 10_000, 'long to run');
    const cancelled = await engine.drover.cancelRun(created.id, { actor: 'test' });
    expect(cancelled.status).toBe('cancelled');
    await eventually(() => returned, 10_000, 'the late return');
    await sleep(300);

    const run = await engine.drover.getRun(created.id);
    expect(sawAbort).toBe(true);
    expect(run.status).toBe('cancelled');
    expect(run.steps.map((s) => [s.name, s.status])).toEqual([['long', 'cancelled'], ['after', 'cancelled'], ['side', 'cancelled']]);
    expect(run.steps[0].output).toBeNull();
    expect(calls.get('after')).toBe(0);
    const audit = (await engine.drover.getAudit(run.id)).items;
    const longEvents = audit.filter((e) => e.stepId === run.steps[0].id).map((e) => e.type);
    expect(longEvents).toEqual(['step.queued', 'step.started', 'step.cancelled']);
    expect(audit.filter((e) => e.type === 'run.cancelled')).toMatchObject([{ actor: 'test' }]);
    expect(audit.some((e) => e.type === 'step.succeeded')).toBe(false);
    // The delayed job of "side" left the queue.
    const side = run.steps[2];
    expect(await engine.backend.queue('default').getJobState(`${side.id}-g0`)).toBe('unknown');
  });

  it('refuses to cancel a finished run, and answers not_found for unknown ids', async () => {
    await engine.startWorker({ workflows: [{ name: 'quick', steps: [{ name: 'a', processor: 'noop' }] }], processors: { noop: async () => 1 } });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'quick' })).id);
    await expect(engine.drover.cancelRun(run.id)).rejects.toMatchObject({ name: 'InvalidStateError', code: 'invalid_state' });
    await expect(engine.drover.cancelRun('00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ name: 'NotFoundError', code: 'not_found' });
    await expect(engine.drover.cancelRun('not-a-uuid')).rejects.toMatchObject({ name: 'NotFoundError', code: 'not_found' });
    expect((await engine.drover.getRun(run.id)).status).toBe('succeeded');
  });
});
