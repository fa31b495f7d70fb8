import * as path from 'node:path';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { maxOverlap, runIntervals } from './helpers/flow';
import { compiled, startNode, type Child } from './helpers/processes';

const WORKER = path.join(__dirname, 'fixtures/flow-worker-process.ts');
const TENANTS = ['t1', 't2', 't3', 't4', 't5'];

describeEachBackend('concurrency keys across worker processes', (backend) => {
  let engine: EngineHarness;
  const children: Child[] = [];
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop()));
    await engine.close();
  });

  const spawnWorker = (id: string, reconciler = false, minStepMs = 0) => {
    const child = startNode(compiled(WORKER), {
      DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend) ?? '', DROVER_NAMESPACE: engine.namespace, WORKER_ID: id,
      RECONCILER: reconciler ? '1' : '0', MIN_STEP_MS: String(minStepMs),
    });
    children.push(child);
    return child;
  };

  it('3 workers, 200 runs over 5 keys, limit 2: never more than 2 running per key; a SIGKILLed worker\'s places come back', async () => {
    // The doomed worker's steps take 5 s: one seen running is still running when the kill lands.
    const workers = [spawnWorker('w1', true), spawnWorker('w2'), spawnWorker('doomed', false, 5000)];
    await Promise.all(workers.map((w) => w.waitFor('ready')));
    const { items } = await engine.drover.createRuns(Array.from({ length: 200 }, (_, i) => ({
      workflow: 'tenant-runs', input: { tenant: TENANTS[i % 5], ms: 40 },
    })));
    expect(items.every((i) => i.id)).toBe(true);
    // Kill the third worker while it holds places (steps of open runs running on it).
    await eventually(async () => {
      const [row] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.steps WHERE worker_id = 'doomed' AND status = 'running'`);
      return row.n > 0;
    }, 20_000, 'a step running on the doomed worker');
    await workers[2].stop('SIGKILL');
    const [{ held }] = await engine.sql.query(`
      SELECT count(DISTINCT s.run_id)::int AS held FROM drover.steps s WHERE s.worker_id = 'doomed' AND s.status = 'running'`);
    expect(held).toBeGreaterThan(0);
    for (const item of items) expect((await engine.drover.waitForRun(item.id!, { timeoutMs: 90_000 })).status).toBe('succeeded');

    const overlap = maxOverlap(await runIntervals(engine.sql, 'tenant-runs', (input) => input.tenant));
    expect([...overlap.keys()].sort()).toEqual(TENANTS);
    for (const [, max] of overlap) expect(max).toBeLessThanOrEqual(2);
    expect(Math.max(...overlap.values())).toBe(2);
    // The doomed worker's runs were finished by the others (a takeover), once each.
    const takeovers = await engine.sql.query(`
      SELECT count(*)::int AS n FROM drover.audit_events WHERE type = 'step.started' AND (data->>'takeover')::boolean`);
    expect(takeovers[0].n).toBeGreaterThan(0);
    const [{ twice }] = await engine.sql.query(`
      SELECT count(*)::int AS twice FROM (SELECT step_id FROM drover.audit_events WHERE type = 'step.succeeded' GROUP BY step_id HAVING count(*) > 1) x`);
    expect(twice).toBe(0);
  }, 150_000);
});
