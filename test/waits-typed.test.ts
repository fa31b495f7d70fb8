import { z } from 'zod';
import { workflow } from '../src/workflows/builder';
import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { waitForEvent } from './helpers/waits';

// The typed builder's kinds (CONTRACT §1b and §7): they compile to the plain definitions.
const child = workflow('typed-child', { input: z.object({ n: z.number() }) });
const doubled = child.step('double', {}, ({ input }) => ({ doubled: input.n * 2 }));
export const typedChild = child.output(doubled);

const wf = workflow('typed-waits', { input: z.object({ n: z.number() }) });
const list = wf.step('list', {}, ({ input }) => ({ items: Array.from({ length: input.n }, (_, i) => i + 1) }));
const squares = wf.map('squares', { over: list, path: 'items', concurrency: 2 }, ({ item, index, parents }) => ({ index, square: (item as number) ** 2, of: parents.list.items.length }));
const nap = wf.sleep('nap', { ms: 200, parents: [squares] });
const approval = wf.waitFor('approval', { signal: 'go', parents: [nap] });
const task = wf.step('task', { parents: [approval] }, ({ parents }) => ({ n: (parents.approval as { ok: boolean }).ok ? 3 : 0 }));
const delegated = wf.child('delegate', { workflow: typedChild, input: 'task', parents: [task] });
wf.step('report', { parents: [delegated, squares, nap] }, ({ parents }) => ({
  doubled: parents.delegate.doubled, squares: parents.squares.map((s) => s.square), slept: parents.nap.sleptMs >= 200,
}));
let alerted = 0;
wf.onFailure(() => { alerted++; });

describeEachBackend('typed workflows with waits', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('runs a map, a sleep, a signal wait and a child run written with the builder', async () => {
    expect(wf.toDefinition().steps.find((s) => s.name === 'squares')).toMatchObject({ map: { over: 'list.items' }, concurrency: 2, dependsOn: ['list'] });
    expect(wf.toDefinition().onFailure).toEqual({ processor: 'typed-waits/onFailure' });
    await engine.startWorker({ workflows: [wf, typedChild] });
    const run = await engine.drover.start(wf, { n: 4 });
    await waitForEvent(engine, run.id, 'step.waiting', 'approval');
    await engine.drover.signal(run.id, 'go', { ok: true });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ report: { doubled: 6, squares: [1, 4, 9, 16], slept: true } });
    expect(done.steps.find((s) => s.name === 'squares')!.output).toEqual([1, 2, 3, 4].map((v, i) => ({ index: i, square: v * v, of: 4 })));
    expect(alerted).toBe(0);
  });
});
