import { jobIdOf } from '../src/queue/dispatcher';
import { describeEachBackend } from './helpers/env';
import { createEngine, reconcilerFor, type EngineHarness } from './helpers/engine';

// Found by `npm run chaos` (redis-restart): a delayed run whose job Redis lost was
// re-enqueued by the reconciler without its delay, so its first step ran early.
// Time passing is simulated by moving `queued_at` back; the checks compare recorded
// times (the step's `queued_at`, the new job's timestamp and delay), never a sleep's length.
describeEachBackend('the reconciler keeps what is left of a lost job\'s delay', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  // Postgres keeps microseconds, JavaScript milliseconds, and the delay is rounded.
  const ROUNDING_MS = 3;

  const reconcile = () => reconcilerFor(engine).reconcile();

  /** Moves the queued step of a run (and when its retry may start) `ms` into the past, as if it had waited that long. */
  const waited = (runId: string, ms: number) => engine.sql.query(`
    UPDATE drover.steps SET queued_at = queued_at - make_interval(secs => $2::double precision / 1000),
           available_at = available_at - make_interval(secs => $2::double precision / 1000)
     WHERE run_id = $1`, [runId, ms]);

  /**
   * The queue loses the step's job; one pass re-creates it. Checks the new job
   * is due when the step's whole delay, counted from `queued_at`, is over:
   * at `queued_at + totalMs`, or later by at most the time the pass took
   * between reading the row and adding the job. Returns the new job's delay.
   */
  const lostJobDueAfter = async (runId: string, totalMs: number): Promise<number> => {
    const [step] = await engine.sql.query(`SELECT id, generation, queued_at FROM drover.steps WHERE run_id = $1 AND status = 'queued'`, [runId]);
    const queue = engine.backend.queue('default');
    await queue.remove(jobIdOf(step.id, step.generation)); // the queue lost it (Redis restarted empty)
    const passStarted = Date.now();
    await reconcile();
    const job = await queue.getJob(jobIdOf(step.id, step.generation));
    expect(job).toBeTruthy();
    const delay = job!.opts.delay ?? 0;
    const expectedDue = Math.max(step.queued_at.getTime() + totalMs, job!.timestamp);
    expect(job!.timestamp + delay).toBeGreaterThanOrEqual(expectedDue - ROUNDING_MS);
    expect(job!.timestamp + delay).toBeLessThanOrEqual(expectedDue + (job!.timestamp - passStarted) + ROUNDING_MS);
    return delay;
  };

  it('a run delay', async () => {
    await engine.drover.registerWorkflows([{ name: 'later', steps: [{ name: 'a', processor: 'noop' }] }]);
    const run = await engine.drover.createRun({ workflow: 'later', delayMs: 5000 });
    await waited(run.id, 1000);
    expect(await lostJobDueAfter(run.id, 5000)).toBeGreaterThan(0);
  });

  it('a step delay, and nothing once it has passed', async () => {
    await engine.drover.registerWorkflows([{ name: 'paced', steps: [{ name: 'a', processor: 'noop', delayMs: 800 }] }]);
    const run = await engine.drover.createRun({ workflow: 'paced' });
    await waited(run.id, 1200);
    expect(await lostJobDueAfter(run.id, 800)).toBe(0);
  });

  it('a retry backoff', async () => {
    await engine.drover.registerWorkflows([{ name: 'backoff', steps: [{ name: 'a', processor: 'noop', backoff: { type: 'fixed', delayMs: 3000 } }] }]);
    const run = await engine.drover.createRun({ workflow: 'backoff' });
    // As markAttemptFailed leaves it: attempt 1 failed, queued again, its retry available after the 3 s backoff (500 ms ago).
    await engine.sql.query(`UPDATE drover.steps SET attempt = 1, queued_at = now(), available_at = now() + interval '3 seconds' WHERE run_id = $1`, [run.id]);
    await waited(run.id, 500);
    expect(await lostJobDueAfter(run.id, 3000)).toBeGreaterThan(0);
  });
});
