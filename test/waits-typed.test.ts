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

const joined = workflow('typed-joins', { input: z.object({ fail: z.boolean() }) });
const okTries = new Map<string, number>();
// Succeeds at its second attempt: a settled dependent sees no error of the first.
const ok = joined.step('ok', { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } }, ({ run }) => {
  okTries.set(run.id, (okTries.get(run.id) ?? 0) + 1);
  if (okTries.get(run.id) === 1) throw new Error('first attempt fails');
  return { n: 1 };
});
const bad = joined.step('bad', { attempts: 1 }, ({ input }) => {
  if (input.fail) throw Object.assign(new Error('bad failed'), { retryable: false });
  return { n: 2 };
});
joined.step('settled', { parents: [ok, bad], join: 'all_settled' }, ({ parents }) => ({
  ok: parents.ok.status, okN: parents.ok.output?.n ?? null, okError: parents.ok.error, bad: parents.bad.status, why: parents.bad.error?.message ?? null,
}));
joined.step('any', { parents: [ok, bad], join: 'any_succeeded' }, ({ parents }) => ({ ok: parents.ok?.n ?? null, bad: parents.bad?.n ?? null }));
joined.step('all', { parents: [ok, bad] }, ({ parents }) => ({ sum: parents.ok.n + parents.bad.n }));

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

  it('types and runs each join policy given to the builder', async () => {
    expect(joined.toDefinition().steps.find((s) => s.name === 'settled')).toMatchObject({ join: 'all_settled', dependsOn: ['ok', 'bad'] });
    await engine.startWorker({ workflows: [joined] });
    const failed = await engine.drover.waitForRun((await engine.drover.start(joined, { fail: true })).id, { timeoutMs: 20_000 });
    const step = (name: string) => failed.steps.find((s) => s.name === name)!;
    expect(failed.status).toBe('failed');
    expect(step('settled')).toMatchObject({ status: 'succeeded', output: { ok: 'succeeded', okN: 1, okError: null, bad: 'failed', why: 'bad failed' } });
    expect(step('any')).toMatchObject({ status: 'succeeded', output: { ok: 1, bad: null } });
    expect(step('all').status).toBe('skipped');
    const passed = await engine.drover.waitForRun((await engine.drover.start(joined, { fail: false })).id, { timeoutMs: 20_000 });
    expect(passed.status).toBe('succeeded');
    expect(passed.steps.find((s) => s.name === 'all')!.output).toEqual({ sum: 3 });
  });
});
