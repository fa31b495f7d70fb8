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
