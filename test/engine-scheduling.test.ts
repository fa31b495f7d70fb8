import { describeEachBackend } from './helpers/env';
import { createEngine, sleep, type EngineHarness } from './helpers/engine';

describeEachBackend('delays and priorities', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('does not start a delayed step before its delay, nor a delayed run', async () => {
    const wf = { name: 'delayed', steps: [{ name: 'first', processor: 'noop' }, { name: 'later', processor: 'noop', dependsOn: ['first'], delayMs: 600 }] };
    await engine.startWorker({ workflows: [wf], processors: { noop: async () => null } });
    const created = await engine.drover.createRun({ workflow: 'delayed', delayMs: 400 });
    const run = await engine.drover.waitForRun(created.id);
    expect(run.status).toBe('succeeded');
    const [first, later] = run.steps;
    expect(Date.parse(first.startedAt!) - Date.parse(run.createdAt)).toBeGreaterThanOrEqual(390);
    expect(Date.parse(later.startedAt!) - Date.parse(later.queuedAt!)).toBeGreaterThanOrEqual(590);
  });

  it('starts a run at runAt (an ISO time), and refuses a bad runAt or one given with delayMs', async () => {
    const wf = { name: 'at-time', steps: [{ name: 'only', processor: 'noop' }] };
    await engine.startWorker({ workflows: [wf], processors: { noop: async () => null } });
    const at = new Date(Date.now() + 800);
    const created = await engine.drover.createRun({ workflow: 'at-time', runAt: at.toISOString() });
    const run = await engine.drover.waitForRun(created.id);
    expect(run.status).toBe('succeeded');
    expect(Date.parse(run.steps[0].startedAt!)).toBeGreaterThanOrEqual(at.getTime() - 20);
    // A time already past starts at once.
    const past = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'at-time', runAt: new Date(Date.now() - 60_000) })).id);
    expect(past.status).toBe('succeeded');
    const refused = async (request: Record<string, unknown>) => {
      const error = await engine.drover.createRun({ workflow: 'at-time', ...request } as never).then(() => undefined, (e: unknown) => e);
      return { code: (error as { code?: string })?.code, message: (error as Error)?.message };
    };
    expect(await refused({ runAt: 'tomorrow' })).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/^runAt: /) });
    expect(await refused({ runAt: '2026-12-02T10:00:00' })).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/^runAt: /) }); // no time zone
    expect(await refused({ runAt: at.toISOString(), delayMs: 10 })).toEqual({ code: 'invalid_request', message: 'runAt: give delayMs or runAt, not both' });
    expect(await refused({ runAt: new Date(Date.now() + 31 * 86_400_000).toISOString() })).toEqual({ code: 'invalid_request', message: 'runAt: must be within 30 days from now' });
  });

  it('runs higher priority first on one worker at concurrency 1', async () => {
    const order: number[] = [];
    const wf = { name: 'prio', steps: [{ name: 'only', processor: 'record' }] };
    // Register the workflow, queue everything while no worker runs, then start one.
    await engine.drover.registerWorkflows([wf]);
    for (const priority of [5, 1, 4, 2, 3]) await engine.drover.createRun({ workflow: 'prio', priority, input: { priority } });
    await sleep(100);
    await engine.startWorker({ workflows: [wf], processors: { record: async (ctx) => { order.push(ctx.input.priority as number); return null; } }, concurrency: 1 });
    const deadline = Date.now() + 20_000;
    while (order.length < 5 && Date.now() < deadline) await sleep(50);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });
});
