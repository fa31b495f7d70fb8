import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import type { WorkflowDefinition } from '../src/types';

// `workspace` as a concurrency key (an extension of CONTRACT §8): counted per run workspace, whatever the input says.
describeEachBackend('workspace as a concurrency key', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('one step per workspace at a time, even when the input names another tenant', async () => {
    const wf: WorkflowDefinition = {
      name: 'per-workspace',
      steps: [{ name: 'call', processor: 'slow', concurrency: { key: 'workspace', limit: 1 } }],
    };
    await engine.startWorker({ workflows: [wf], processors: { slow: async () => { await new Promise((r) => setTimeout(r, 60)); return null; } }, concurrency: 10 });
    const { items } = await engine.drover.createRuns(Array.from({ length: 8 }, (_, i) => ({
      workflow: 'per-workspace', workspace: i % 2 ? 'a' : 'b', input: { tenant: `lie-${i}` },
    })));
    for (const item of items) expect((await engine.drover.waitForRun(item.id!, { timeoutMs: 20_000 })).status).toBe('succeeded');
    const rows = await engine.sql.query<{ workspace: string; key: string; started: Date; finished: Date }>(`
      SELECT r.workspace, s.options->'flow'->'step'->>'key' AS key, s.started_at AS started, s.finished_at AS finished
        FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id`);
    for (const r of rows) expect(r.key).toBe(`workspace=${r.workspace}`);
    for (const ws of ['a', 'b']) {
      const mine = rows.filter((r) => r.workspace === ws).sort((x, y) => +x.started - +y.started);
      for (let i = 1; i < mine.length; i++) expect(+mine[i].started).toBeGreaterThanOrEqual(+mine[i - 1].finished);
    }
  }, 60_000);
});
