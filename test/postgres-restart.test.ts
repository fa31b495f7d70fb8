import * as fs from 'node:fs';
import { EmbeddedPostgres } from '../src/embedded/embedded-postgres';
import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, sleep, type EngineHarness } from './helpers/engine';
import { startOwnPostgres } from './helpers/own-postgres';

describeEachBackend('a Postgres restart during work', (backend) => {
  let server: EmbeddedPostgres;
  let dir: string;
  let engine: EngineHarness;

  beforeEach(async () => {
    let url: string;
    ({ server, dir, url } = await startOwnPostgres('pgrestart', backend));
    engine = await createEngine(backend, { databaseUrl: url });
  });
  afterEach(async () => {
    await engine.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('does not stop the workers, and every run finishes', async () => {
    const wf = { name: 'steady', steps: [{ name: 'a', processor: 'work' }, { name: 'b', processor: 'work', dependsOn: ['a'] }, { name: 'c', processor: 'work', dependsOn: ['b'] }] };
    const worker = await engine.startWorker({
      workflows: [wf], processors: { work: async () => { await sleep(50); return 1; } }, concurrency: 5,
      reconciler: { intervalMs: 500, queuedGraceMs: 1000, heartbeatTimeoutMs: 10_000 },
    });
    const batch = await engine.drover.createRuns(Array.from({ length: 30 }, () => ({ workflow: 'steady' })));
    await eventually(async () => {
      const [r] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.steps WHERE status = 'succeeded'`);
      return r.n >= 10;
    }, 20_000, 'some progress');

    await server.stop();
    await sleep(1500);
    await server.start();

    for (const item of batch.items) {
      expect((await engine.drover.waitForRun(item.id!, { timeoutMs: 60_000 })).status).toBe('succeeded');
    }
    // The same worker still takes new work.
    const after = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'steady' })).id, { timeoutMs: 30_000 });
    expect(after.status).toBe('succeeded');
    expect(after.steps.every((s) => s.attempts >= 1)).toBe(true);
    const [doubled] = await engine.sql.query(`SELECT count(*)::int AS n FROM (SELECT step_id FROM drover.audit_events
      WHERE type = 'step.succeeded' GROUP BY step_id HAVING count(*) > 1) x`);
    expect(doubled.n).toBe(0);
    expect(worker.queues).toEqual(['default']);
  }, 120_000);
});
