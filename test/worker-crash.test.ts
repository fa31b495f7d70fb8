import * as path from 'node:path';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { compiled, startNode, type Child } from './helpers/processes';

const WORKER = path.join(__dirname, 'fixtures/worker-process.ts');

describeEachBackend('a worker killed mid-step', (backend) => {
  let engine: EngineHarness;
  const children: Child[] = [];
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop()));
    await engine.close();
  });

  const spawnWorker = (id: string) => {
    const child = startNode(compiled(WORKER), {
      DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend) ?? '', DROVER_NAMESPACE: engine.namespace, WORKER_ID: id,
    });
    children.push(child);
    return child;
  };

  it('is replaced: another worker finishes the run and the step completes once', async () => {
    const doomed = spawnWorker('doomed');
    await doomed.waitFor('ready');
    const created = await engine.drover.createRun({ workflow: 'slow-chain', input: { ms: 3000 } });
    await eventually(async () => {
      const [row] = await engine.sql.query(`SELECT status, worker_id FROM drover.steps WHERE run_id = $1 AND name = 'a'`, [created.id]);
      return row.status === 'running' && row.worker_id === 'doomed';
    }, 15_000, 'step a running on the doomed worker');
    await doomed.stop('SIGKILL');

    const survivor = spawnWorker('survivor');
    await survivor.waitFor('ready');
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 40_000 });
    expect(run.status).toBe('succeeded');
    expect(run.steps[0]).toMatchObject({ name: 'a', status: 'succeeded', attempts: 2, output: { by: 'survivor' } });
    const audit = (await engine.drover.getAudit(run.id)).items;
    const aEvents = audit.filter((e) => e.stepId === run.steps[0].id);
    expect(aEvents.filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
    expect(aEvents.filter((e) => e.type === 'step.started').map((e) => e.actor)).toEqual(['worker:doomed', 'worker:survivor']);
  }, 60_000);
});
