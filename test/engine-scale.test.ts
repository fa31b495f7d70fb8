import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { Calls, echo } from './helpers/fixtures';

// a → (b, c) → d → e : five steps
const five = {
  name: 'five',
  steps: [
    { name: 'a', processor: 'echo' },
    { name: 'b', processor: 'echo', dependsOn: ['a'] },
    { name: 'c', processor: 'echo', dependsOn: ['a'] },
    { name: 'd', processor: 'echo', dependsOn: ['b', 'c'] },
    { name: 'e', processor: 'echo', dependsOn: ['d'] },
  ],
};

describeEachBackend('many runs on several workers', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('finishes 200 runs of 5 steps across 3 workers, completing each step once', async () => {
    const calls = new Calls();
    for (let i = 0; i < 3; i++) await engine.startWorker({ workflows: [five], processors: { echo: echo(calls) }, concurrency: 8 });
    const batch = await engine.drover.createRuns(Array.from({ length: 200 }, (_, i) => ({ workflow: 'five', input: { i } })));
    expect(batch).toMatchObject({ created: 200, failed: 0 });
    for (const item of batch.items) {
      const run = await engine.drover.waitForRun(item.id!, { timeoutMs: 90_000 });
      expect(run.status).toBe('succeeded');
    }
    const [counts] = await engine.sql.query(`
      SELECT count(*)::int AS steps,
             count(*) FILTER (WHERE status = 'succeeded')::int AS succeeded,
             (SELECT count(*)::int FROM drover.audit_events WHERE type = 'step.succeeded') AS succeeded_events,
             (SELECT count(*)::int FROM (SELECT step_id FROM drover.audit_events WHERE type = 'step.succeeded'
                                          GROUP BY step_id HAVING count(*) > 1) x) AS doubled
        FROM drover.steps`);
    expect(counts).toEqual({ steps: 1000, succeeded: 1000, succeeded_events: 1000, doubled: 0 });
    // At-least-once execution is allowed, but nothing was redelivered here.
    expect(calls.total()).toBe(1000);
    const workersUsed = await engine.sql.query(`SELECT count(DISTINCT worker_id)::int AS n FROM drover.steps`);
    expect(workersUsed[0].n).toBe(3);
  }, 120_000);
});
