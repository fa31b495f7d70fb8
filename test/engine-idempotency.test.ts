import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';

describeEachBackend('idempotency keys', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => {
    engine = await createEngine(backend);
    await engine.drover.registerWorkflows([{ name: 'once', steps: [{ name: 'a', processor: 'noop' }] }]);
  });
  afterEach(async () => { await engine.close(); });

  it('concurrent createRun calls with one key create exactly one run', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () =>
      engine.drover.submitRun({ workflow: 'once', idempotencyKey: 'order-42', input: { n: 1 } })));
    const ids = new Set(results.map((r) => r.run.id));
    expect(ids.size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const [{ n }] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.runs`);
    expect(n).toBe(1);
    const [{ events }] = await engine.sql.query(`SELECT count(*)::int AS events FROM drover.audit_events WHERE type = 'run.created'`);
    expect(events).toBe(1);
  });

  it('scopes keys by workspace and handles repeats inside one batch', async () => {
    const result = await engine.drover.createRuns([
      { workflow: 'once', idempotencyKey: 'k1' },
      { workflow: 'once', idempotencyKey: 'k1' },
      { workflow: 'once', idempotencyKey: 'k1', workspace: 'other' },
    ]);
    expect(result.created).toBe(2);
    expect(result.items[1]).toMatchObject({ id: result.items[0].id, existing: true });
    expect(result.items[2].id).not.toBe(result.items[0].id);
    const again = await engine.drover.submitRun({ workflow: 'once', idempotencyKey: 'k1' });
    expect(again).toMatchObject({ created: false, run: { id: result.items[0].id, idempotencyKey: 'k1' } });
  });
});
