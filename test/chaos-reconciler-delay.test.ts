import { Dispatcher, jobIdOf } from '../src/dispatcher';
import { silentLogger } from '../src/logger';
import { Reconciler } from '../src/reconciler';
import { StepStore } from '../src/step-store';
import { describeEachBackend } from './helpers/env';
import { createEngine, sleep, type EngineHarness } from './helpers/engine';

// Found by `npm run chaos` (redis-restart): a delayed run whose job Redis lost was
// re-enqueued by the reconciler without its delay, so its first step ran early.
describeEachBackend('the reconciler keeps what is left of a lost job\'s delay', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const reconcile = () => new Reconciler({
    sql: engine.sql, backend: engine.backend, store: new StepStore(engine.sql),
    dispatcher: new Dispatcher(engine.backend, silentLogger), logger: silentLogger, metrics: engine.drover.metrics, queues: ['default'],
  }, { queuedGraceMs: 0 }).reconcile();

  const lostJobDelay = async (runId: string): Promise<number> => {
    const [step] = await engine.sql.query(`SELECT id, generation FROM drover.steps WHERE run_id = $1 AND status = 'queued'`, [runId]);
    const queue = engine.backend.queue('default');
    await queue.remove(jobIdOf(step.id, step.generation)); // the queue lost it (Redis restarted empty)
    await reconcile();
    const job = await queue.getJob(jobIdOf(step.id, step.generation));
    expect(job).toBeTruthy();
    return job!.opts.delay ?? 0;
  };

  it('a run delay', async () => {
    await engine.drover.registerWorkflows([{ name: 'later', steps: [{ name: 'a', processor: 'noop' }] }]);
    const run = await engine.drover.createRun({ workflow: 'later', delayMs: 5000 });
    await sleep(1000);
    const delay = await lostJobDelay(run.id);
    expect(delay).toBeGreaterThan(3000);
    expect(delay).toBeLessThanOrEqual(4100);
  });

  it('a step delay, and nothing once it has passed', async () => {
    await engine.drover.registerWorkflows([{ name: 'paced', steps: [{ name: 'a', processor: 'noop', delayMs: 800 }] }]);
    const run = await engine.drover.createRun({ workflow: 'paced' });
    await sleep(1200);
    expect(await lostJobDelay(run.id)).toBe(0);
  });

  it('a retry backoff', async () => {
    await engine.drover.registerWorkflows([{ name: 'backoff', steps: [{ name: 'a', processor: 'noop', backoff: { type: 'fixed', delayMs: 3000 } }] }]);
    const run = await engine.drover.createRun({ workflow: 'backoff' });
    // As markAttemptFailed leaves it: attempt 1 failed, queued again for its backoff.
    await engine.sql.query(`UPDATE drover.steps SET attempt = 1, queued_at = now(), available_at = now() + interval '3 seconds' WHERE run_id = $1`, [run.id]);
    await sleep(500);
    const delay = await lostJobDelay(run.id);
    expect(delay).toBeGreaterThan(2000);
    expect(delay).toBeLessThanOrEqual(2600);
  });
});
