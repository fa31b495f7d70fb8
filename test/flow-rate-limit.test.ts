import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, sleep, type EngineHarness } from './helpers/engine';
import type { WorkflowDefinition } from '../src/types';

/** The start times (epoch µs) of the audit trail's events of `type` in a workflow's runs, oldest first. */
async function startTimes(engine: EngineHarness, workflow: string, type: 'step.started' | 'run.started'): Promise<number[]> {
  const rows = await engine.sql.query(`
    SELECT (extract(epoch FROM a.at) * 1e6)::bigint::text AS at FROM drover.audit_events a JOIN drover.runs r ON r.id = a.run_id
     WHERE r.workflow = $1 AND a.type = $2 ORDER BY a.at`, [workflow, type]);
  return rows.map((r) => Number(r.at));
}

/** The most starts in any window of `periodMs` (a window ending at each start holds the most). */
function maxInWindow(times: number[], periodMs: number): number {
  let max = 0;
  let first = 0;
  for (let last = 0; last < times.length; last++) {
    while (times[last] - times[first] >= periodMs * 1000) first++;
    max = Math.max(max, last - first + 1);
  }
  return max;
}

describeEachBackend('rate limits', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('holds 10 starts per second over 10 s of 100 runs per second offered', async () => {
    const wf: WorkflowDefinition = { name: 'metered', steps: [{ name: 'call', processor: 'quick', rateLimit: { key: 'input.api', limit: 10, periodMs: 1000 } }] };
    await engine.startWorker({ workflows: [wf], processors: { quick: async () => null }, concurrency: 20 });
    await engine.startWorker({ workflows: [wf], processors: { quick: async () => null }, concurrency: 20 });
    const begin = Date.now();
    // 100 per second for 10 seconds, in batches of 10 every 100 ms.
    for (let tick = 0; tick < 100; tick++) {
      await engine.drover.createRuns(Array.from({ length: 10 }, () => ({ workflow: 'metered', input: { api: 'maps' } })));
      const next = begin + (tick + 1) * 100;
      if (next > Date.now()) await sleep(next - Date.now());
    }
    const otherRun = await engine.drover.createRun({ workflow: 'metered', input: { api: 'other' } });
    // Another key value has its own window: it starts behind the jobs in the queue, not behind the window.
    const done = await engine.drover.waitForRun(otherRun.id, { timeoutMs: 30_000 });
    expect(done.status).toBe('succeeded');
    const [{ offered }] = await engine.sql.query(`SELECT count(*)::int AS offered FROM drover.runs WHERE workflow = 'metered' AND input->>'api' = 'maps'`);
    expect(offered).toBe(1000);
    const maps = await engine.sql.query(`
      SELECT (extract(epoch FROM a.at) * 1e6)::bigint::text AS at FROM drover.audit_events a JOIN drover.runs r ON r.id = a.run_id
       WHERE r.workflow = 'metered' AND a.type = 'step.started' AND r.input->>'api' = 'maps' ORDER BY a.at`);
    const mapTimes = maps.map((r) => Number(r.at));
    expect(maxInWindow(mapTimes, 1000)).toBeLessThanOrEqual(10);
    // The limit was used, not just kept: most of the 100 starts the 10 s allow (each start waits for
    // its booked turn and a delayed job's wake-up, which run late on a loaded machine).
    const during = mapTimes.filter((t) => t < (begin + 10_000) * 1000).length;
    expect(during).toBeGreaterThanOrEqual(50);
    expect(during).toBeLessThanOrEqual(100);
  }, 60_000);

  it('limits run starts of a workflow per key (workflow rateLimit), counting each run once', async () => {
    const wf: WorkflowDefinition = {
      name: 'metered-runs', rateLimit: { key: 'input.tenant', limit: 5, periodMs: 1000 },
      steps: [{ name: 'a', processor: 'quick' }, { name: 'b', processor: 'quick' }, { name: 'c', processor: 'quick', dependsOn: ['a', 'b'] }],
    };
    await engine.startWorker({ workflows: [wf], processors: { quick: async () => null }, concurrency: 20 });
    const { items } = await engine.drover.createRuns(Array.from({ length: 15 }, () => ({ workflow: 'metered-runs', input: { tenant: 't' } })));
    for (const item of items) expect((await engine.drover.waitForRun(item.id!, { timeoutMs: 30_000 })).status).toBe('succeeded');
    const times = await startTimes(engine, 'metered-runs', 'run.started');
    expect(times).toHaveLength(15);
    expect(maxInWindow(times, 1000)).toBeLessThanOrEqual(5);
    // 15 runs at 5 per second take at least two full periods.
    expect((times[14] - times[0]) / 1000).toBeGreaterThanOrEqual(2000);
  }, 60_000);

  it('a job without the rate limiter\'s hint cannot start a rate-limited step (the start is fenced)', async () => {
    const wf: WorkflowDefinition = { name: 'fenced-rate', steps: [{ name: 'call', processor: 'quick', rateLimit: { key: 'k', limit: 1, periodMs: 60_000 } }] };
    await engine.drover.registerWorkflows([wf]);
    const run = await engine.drover.createRun({ workflow: 'fenced-rate' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    const store = new (await import('../src/steps/step-store')).StepStore(engine.sql);
    const { randomUUID } = await import('node:crypto');
    const started = await store.markStepsRunning([{ stepId: step.id, runId: run.id, generation: 0, lease: randomUUID(), processor: 'quick' }], 'intruder');
    expect(started.size).toBe(0);
    await engine.startWorker({ workflows: [wf], processors: { quick: async () => null } });
    await eventually(async () => (await engine.drover.getRun(run.id)).status === 'succeeded', 10_000, 'the run through the rate limiter');
  }, 30_000);
});
