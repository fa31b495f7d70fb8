import * as path from 'node:path';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { compiled, startNode, type Child } from './helpers/processes';
import { migrateOrders, OrderEntity, ordersWorkflow } from './fixtures/orders';

const WORKER = path.join(__dirname, 'fixtures/orders-worker.ts');

describeEachBackend('ctx.transaction', (backend) => {
  let engine: EngineHarness;
  const children: Child[] = [];
  beforeEach(async () => {
    engine = await createEngine(backend);
    await migrateOrders(engine.databaseUrl);
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop()));
    await engine.close();
  });

  const orders = (runId: string) => engine.sql.query<{ sku: string; attempt: number }>(
    `SELECT sku, attempt FROM app.orders WHERE run_id = $1 ORDER BY sku`, [runId]);

  it('commits the processor\'s rows with the step\'s success; a failed attempt\'s rows roll back and the retry writes them once', async () => {
    const wf = ordersWorkflow();
    await engine.startWorker({ workflows: [wf], entities: [OrderEntity] });
    const ok = await engine.drover.start(wf, { then: 'succeed' });
    expect(await ok.result({ timeoutMs: 20_000 })).toEqual({ confirm: { committed: 2, placed: 2 } });
    expect(await orders(ok.id)).toEqual([{ sku: 'a', attempt: 1 }, { sku: 'b', attempt: 1 }]);

    const retried = await engine.drover.start(wf, { then: 'fail' });
    expect(await retried.result({ timeoutMs: 20_000 })).toEqual({ confirm: { committed: 2, placed: 2 } });
    expect(await orders(retried.id)).toEqual([{ sku: 'a', attempt: 2 }, { sku: 'b', attempt: 2 }]);
    expect((await engine.drover.getRun(retried.id)).steps[0].attempts).toBe(2);
  });

  it('rolls the rows back when the step is cancelled', async () => {
    const wf = ordersWorkflow();
    await engine.startWorker({ workflows: [wf], entities: [OrderEntity] });
    const run = await engine.drover.start(wf, { then: 'hang' });
    await eventually(async () => (await engine.drover.getRun(run.id)).steps[0].status === 'running', 15_000, 'place running');
    await engine.drover.cancelRun(run.id);
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('cancelled');
    await eventually(async () => (await engine.sql.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'idle in transaction' AND datname = current_database()`))[0].n === 0, 10_000, 'no open transaction');
    expect(await orders(run.id)).toEqual([]);
  });

  it('SIGKILL between the insert and the commit leaves neither; the takeover writes them once', async () => {
    // Its start written at once (recordStartAfterMs 0), so the killed attempt is counted (one-write.test.ts kills one that is not).
    const child = startNode(compiled(WORKER), {
      DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend) ?? '', DROVER_NAMESPACE: engine.namespace, RECORD_START_AFTER_MS: '0',
    });
    children.push(child);
    await child.waitFor('ready');
    const wf = ordersWorkflow();
    const run = await engine.drover.start(wf, { then: 'hang' });
    await child.waitFor(`inserted ${run.id}`);
    // Written in the attempt's transaction, not committed: invisible from outside.
    expect(await orders(run.id)).toEqual([]);
    await child.stop('SIGKILL');
    expect(await orders(run.id)).toEqual([]);
    expect((await engine.drover.getRun(run.id)).steps[0].status).toBe('running');

    // The survivor checks for stalled jobs every second: the doomed worker's lock (2 s) runs out and it takes the step over.
    await engine.startWorker({ workflows: [wf], entities: [OrderEntity], lockDurationMs: 2000, stalledIntervalMs: 1000 });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 40_000 });
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ confirm: { committed: 2, placed: 2 } });
    expect(done.steps[0]).toMatchObject({ name: 'place', status: 'succeeded', attempts: 2 });
    expect(await orders(run.id)).toEqual([{ sku: 'a', attempt: 2 }, { sku: 'b', attempt: 2 }]);
  }, 60_000);
});
