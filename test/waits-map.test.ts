import { describeEachBackend } from './helpers/env';
import { createEngine, sleep, type EngineHarness } from './helpers/engine';
import { Calls } from './helpers/fixtures';
import type { WorkflowDefinition } from '../src/types';

const fanout = (n: number, concurrency?: number): WorkflowDefinition => ({
  name: `fanout-${n}-${concurrency ?? 'all'}`,
  steps: [
    { name: 'list', processor: 'list' },
    { name: 'each', map: { over: 'list.items' }, processor: 'square', dependsOn: ['list'], attempts: 3, backoff: { type: 'fixed', delayMs: 10 }, ...(concurrency ? { concurrency } : {}) },
    { name: 'sum', processor: 'sum', dependsOn: ['each'] },
  ],
});

describeEachBackend('map steps', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('maps 1,000 elements across 3 workers: each processed once, results in order, a failing element retried', async () => {
    const calls = new Calls();
    const byWorker = new Map<number, number>();
    const wf = fanout(1000);
    const processorsFor = (worker: number) => ({
      list: async (ctx: any) => ({ items: Array.from({ length: ctx.input.n }, (_, i) => i) }),
      square: async (ctx: any) => {
        const n = calls.record(`e${ctx.index}`);
        byWorker.set(worker, (byWorker.get(worker) ?? 0) + 1);
        if (ctx.index === 500 && n === 1) throw new Error('element 500 fails once');
        // The map's parents are the map step's own.
        if (ctx.parents.list.items.length !== 1000 || ctx.item !== ctx.index) throw new Error('wrong context');
        return ctx.item * ctx.item;
      },
      sum: async (ctx: any) => ({ total: ctx.parents.each.reduce((a: number, b: number) => a + b, 0), length: ctx.parents.each.length }),
    });
    for (const w of [0, 1, 2]) await engine.startWorker({ workflows: [wf], processors: processorsFor(w), concurrency: 20 });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: wf.name, input: { n: 1000 } })).id, { timeoutMs: 120_000 });
    expect(run.status).toBe('succeeded');
    const each = run.steps.find((s) => s.name === 'each')!;
    expect(each.output).toEqual(Array.from({ length: 1000 }, (_, i) => i * i));
    expect(each.map).toEqual({ total: 1000, succeeded: 1000, failed: 0, running: 0, waiting: 0 });
    expect(each.dependsOn).toEqual(['list']);
    expect(run.steps.map((s) => s.name)).toEqual(['list', 'each', 'sum']);
    expect(run.steps.find((s) => s.name === 'sum')!.output).toEqual({ total: 332_833_500, length: 1000 });
    // Each element processed once (500 twice: its retry), by more than one worker.
    expect(calls.counts.size).toBe(1000);
    expect([...calls.counts.entries()].filter(([, n]) => n !== 1)).toEqual([['e500', 2]]);
    expect([...byWorker.values()].filter((n) => n > 0).length).toBeGreaterThan(1);
    const [doubled] = await engine.sql.query(`SELECT count(*)::int AS n FROM (SELECT step_id FROM drover.audit_events
      WHERE run_id = $1 AND type = 'step.succeeded' GROUP BY step_id HAVING count(*) > 1) x`, [run.id]);
    expect(doubled.n).toBe(0);
    const elements = await engine.sql.query(`SELECT map_index, attempt, status FROM drover.steps WHERE run_id = $1 AND map_of IS NOT NULL ORDER BY map_index`, [run.id]);
    expect(elements).toHaveLength(1000);
    expect(elements[500]).toEqual({ map_index: 500, attempt: 2, status: 'succeeded' });
  }, 150_000);

  it('respects the map\'s concurrency and fails the map (not the others) when an element fails for good', async () => {
    let running = 0;
    let most = 0;
    const wf = fanout(12, 3);
    await engine.startWorker({
      workflows: [wf],
      concurrency: 20,
      processors: {
        list: async () => ({ items: Array.from({ length: 12 }, (_, i) => i) }),
        square: async (ctx: any) => {
          running++;
          most = Math.max(most, running);
          await sleep(60);
          running--;
          if (ctx.item === 7) throw new Error('seven is bad');
          return ctx.item;
        },
        sum: async () => 'never',
      },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: wf.name })).id, { timeoutMs: 30_000 });
    expect(run.status).toBe('failed');
    expect(most).toBe(3);
    const each = run.steps.find((s) => s.name === 'each')!;
    expect(each.status).toBe('failed');
    expect(each.error).toMatchObject({ code: 'map_element_failed', message: 'element 7 failed: seven is bad' });
    // The other elements still ran (failFast is off), then the map failed and its dependent was skipped.
    expect(each.map).toEqual({ total: 12, succeeded: 11, failed: 1, running: 0, waiting: 0 });
    expect(run.steps.find((s) => s.name === 'sum')!.status).toBe('skipped');
  });

  it('fails the map step clearly when the array is too large or missing', async () => {
    const wf: WorkflowDefinition = {
      name: 'too-many',
      steps: [{ name: 'list', processor: 'list' }, { name: 'each', map: { over: 'list.items' }, processor: 'noop', dependsOn: ['list'] }],
    };
    await engine.startWorker({ workflows: [wf], processors: { list: async (ctx: any) => ({ items: ctx.input.n === undefined ? 'nope' : new Array(ctx.input.n).fill(0) }), noop: async () => 1 } });
    const big = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'too-many', input: { n: 10_001 } })).id, { timeoutMs: 20_000 });
    expect(big.steps[1].error).toMatchObject({ code: 'map_too_large', message: 'map.over "list.items" has 10001 elements; a map step takes at most 10000' });
    const bad = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'too-many', input: {} })).id, { timeoutMs: 20_000 });
    expect(bad.steps[1].error).toMatchObject({ code: 'invalid_map', message: 'map.over "list.items" is not an array' });
    const empty = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'too-many', input: { n: 0 } })).id, { timeoutMs: 20_000 });
    expect(empty.status).toBe('succeeded');
    expect(empty.steps[1].output).toEqual([]);
  });
});
