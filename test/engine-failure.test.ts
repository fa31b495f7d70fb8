import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { Calls, echo, fatal, sleep } from './helpers/fixtures';

/** The count of finished steps with a status on one queue, in the metrics the test's Drover and workers share. */
async function finished(engine: EngineHarness, status: string, queue: string): Promise<number> {
  const { values } = await engine.drover.metrics.stepsFinished.get();
  return values.filter((v) => v.labels.status === status && v.labels.queue === queue).reduce((a, v) => a + v.value, 0);
}

// root → bad → after-bad ; root → good → after-good ; (after-bad, after-good) → join
const branches = (failFast: boolean) => ({
  name: failFast ? 'branches-ff' : 'branches',
  failFast,
  steps: [
    { name: 'root', processor: 'echo' },
    { name: 'bad', processor: 'fatal', dependsOn: ['root'] },
    { name: 'after-bad', processor: 'echo', dependsOn: ['bad'] },
    { name: 'good', processor: 'slow', dependsOn: ['root'] },
    { name: 'after-good', processor: 'echo', dependsOn: ['good'] },
    { name: 'join', processor: 'echo', dependsOn: ['after-bad', 'after-good'] },
  ],
});

describeEachBackend('failing branches', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('skips the dependents of a failed step while an independent branch finishes', async () => {
    const calls = new Calls();
    const queue = 'default'; // the metrics label is the drover queue name
    await engine.startWorker({
      workflows: [branches(false)],
      processors: { echo: echo(calls), fatal, slow: async (ctx) => { await sleep(300, ctx.signal); calls.record(ctx.step.name); return 'ok'; } },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'branches' })).id);
    expect(run.status).toBe('failed');
    const status = Object.fromEntries(run.steps.map((s) => [s.name, s.status]));
    expect(status).toEqual({ root: 'succeeded', bad: 'failed', 'after-bad': 'skipped', good: 'succeeded', 'after-good': 'succeeded', join: 'skipped' });
    expect(calls.get('after-good')).toBe(1);
    expect(calls.get('join')).toBe(0);
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.filter((e) => e.type === 'step.skipped')).toHaveLength(2);
    expect(audit[audit.length - 1].type).toBe('run.failed');
    expect([await finished(engine, 'succeeded', queue), await finished(engine, 'failed', queue), await finished(engine, 'skipped', queue)]).toEqual([3, 1, 2]);
  });

  it('with failFast cancels the rest of the run', async () => {
    const aborted: string[] = [];
    let goodStarted!: () => void;
    const goodRunning = new Promise<void>((resolve) => { goodStarted = resolve; });
    await engine.startWorker({
      workflows: [branches(true)],
      processors: {
        echo: echo(),
        // Fail only once "good" is running, so failFast has a running step to cancel.
        fatal: async (ctx) => { await goodRunning; return fatal(ctx); },
        slow: async (ctx) => {
          goodStarted();
          try {
            await sleep(3000, ctx.signal);
          } catch (e) {
            aborted.push(ctx.step.name);
            throw e;
          }
          return 'finished anyway';
        },
      },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'branches-ff' })).id);
    expect(run.status).toBe('failed');
    const status = Object.fromEntries(run.steps.map((s) => [s.name, s.status]));
    expect(status).toEqual({ root: 'succeeded', bad: 'failed', 'after-bad': 'skipped', good: 'cancelled', 'after-good': 'cancelled', join: 'skipped' });
    await sleep(300);
    expect(aborted).toEqual(['good']);
  });
});
