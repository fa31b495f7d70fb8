import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { Calls, echo, sleep } from './helpers/fixtures';

const diamond = {
  name: 'diamond',
  steps: [
    { name: 'a', processor: 'a' },
    { name: 'b', processor: 'slow', dependsOn: ['a'] },
    { name: 'c', processor: 'slow', dependsOn: ['a'] },
    { name: 'd', processor: 'join', dependsOn: ['b', 'c'] },
  ],
};

describeEachBackend('a diamond DAG', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('runs b and c in parallel on two workers and passes outputs along', async () => {
    const calls = new Calls();
    const running = new Set<string>();
    let overlap = false;
    const processors = {
      a: async () => ({ seed: 21 }),
      slow: async (ctx: any) => {
        calls.record(ctx.step.name);
        running.add(ctx.step.name);
        if (running.size > 1) overlap = true;
        await sleep(300);
        running.delete(ctx.step.name);
        return { value: ctx.parents.a.seed * (ctx.step.name === 'b' ? 1 : 2), by: ctx.step.name };
      },
      join: async (ctx: any) => ({ sum: ctx.parents.b.value + ctx.parents.c.value, seen: Object.keys(ctx.parents).sort() }),
    };
    await engine.startWorker({ workflows: [diamond], processors, concurrency: 1 });
    await engine.startWorker({ workflows: [diamond], processors, concurrency: 1 });

    const created = await engine.drover.createRun({ workflow: 'diamond', input: { n: 1 } });
    expect(created.status).toBe('pending');
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 20_000 });

    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ d: { sum: 63, seen: ['b', 'c'] } });
    expect(overlap).toBe(true);
    expect(run.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['a', 'succeeded', 1], ['b', 'succeeded', 1], ['c', 'succeeded', 1], ['d', 'succeeded', 1],
    ]);
    expect(run.startedAt).not.toBeNull();
    expect(run.finishedAt).not.toBeNull();

    const audit = (await engine.drover.getAudit(run.id)).items;
    const byStep = new Map(run.steps.map((s) => [s.id, s.name]));
    const trail = audit.map((e) => (e.stepId ? `${byStep.get(e.stepId)}:${e.type}` : e.type));
    expect(trail[0]).toBe('run.created');
    expect(trail[trail.length - 1]).toBe('run.succeeded');
    const at = (entry: string) => trail.indexOf(entry);
    for (const name of ['a', 'b', 'c', 'd']) {
      expect(at(`${name}:step.queued`)).toBeLessThan(at(`${name}:step.succeeded`));
      // A quick step's start is written with its success (one event, carrying startedAt and its worker).
      const succeeded = audit.find((e) => e.stepId && byStep.get(e.stepId) === name && e.type === 'step.succeeded')!;
      expect(succeeded.data).toMatchObject({ attempt: 1, startedAt: expect.any(String), worker: expect.any(String) });
      expect(Date.parse((succeeded.data as any).startedAt)).toBeLessThanOrEqual(Date.parse(succeeded.at));
      expect(trail).not.toContain(`${name}:step.started`);
    }
    expect(at('a:step.succeeded')).toBeLessThan(at('b:step.queued'));
    expect(at('a:step.succeeded')).toBeLessThan(at('c:step.queued'));
    expect(at('b:step.succeeded')).toBeLessThan(at('d:step.queued'));
    expect(at('c:step.succeeded')).toBeLessThan(at('d:step.queued'));
    expect(trail.filter((t) => t.endsWith('step.succeeded'))).toHaveLength(4);
  });

  it('gives a run of independent steps the output of every sink', async () => {
    const wf = { name: 'fanout', steps: [{ name: 'root', processor: 'echo' }, { name: 'x', processor: 'echo', dependsOn: ['root'] }, { name: 'y', processor: 'echo', dependsOn: ['root'] }] };
    await engine.startWorker({ workflows: [wf], processors: { echo: echo() } });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'fanout' })).id);
    expect(run.status).toBe('succeeded');
    expect(Object.keys(run.output!).sort()).toEqual(['x', 'y']);
    expect(run.output!.x).toEqual({ step: 'x', parents: { root: { step: 'root', parents: {} } } });
  });
});
