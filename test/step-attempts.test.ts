import { jobIdOf } from '../src/queue/dispatcher';
import type { AuditEventView } from '../src/types';
import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, reconcilerFor, type EngineHarness } from './helpers/engine';
import { attemptStarts } from './helpers/fixtures';

/** Postgres owns a step's attempts and the time of its next one; BullMQ only carries the job. */
describeEachBackend('attempts owned by Postgres', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const ofType = (audit: AuditEventView[], type: string) => audit.filter((e) => e.type === type);
  const at = (e: AuditEventView) => Date.parse(e.at);
  const failing = async (ctx: { step: { attempt: number } }) => { throw new Error(`failure ${ctx.step.attempt}`); };

  /** Every start after a failed attempt began no earlier than the retry time recorded with that failure. */
  function expectStartsAfterBackoff(audit: AuditEventView[]): void {
    const early = ofType(audit, 'step.attempt_failed').flatMap((f) => {
      const { attempt, retryInMs } = f.data as { attempt: number; retryInMs: number };
      const next = attemptStarts(audit).find((s) => s.attempt === attempt + 1);
      return next && next.at - at(f) < retryInMs ? [{ attempt: attempt + 1, startedAfterMs: next.at - at(f), retryInMs }] : [];
    });
    expect(early).toEqual([]);
  }

  it('a step whose job is re-created after attempt 1 of 3 gets exactly 3 attempts, each after its recorded backoff', async () => {
    const wf = { name: 'recreated', steps: [{ name: 'a', processor: 'failing', attempts: 3, backoff: { type: 'exponential' as const, delayMs: 400 } }] };
    await engine.startWorker({ workflows: [wf], processors: { failing } });
    const run = await engine.drover.createRun({ workflow: 'recreated' });
    const stepId = (await engine.drover.getRun(run.id)).steps[0].id;
    await eventually(async () => ofType((await engine.drover.getAudit(run.id)).items, 'step.attempt_failed').length === 1, 10_000, 'attempt 1 failed');
    // The queue loses the job while it backs off (Redis restarted empty, a flush): the reconciler re-creates it.
    // (The worker records the failure first, then moves the job to delayed; an active job cannot be removed.)
    const queue = engine.backend.queue('default');
    await eventually(async () => (await queue.getJobState(jobIdOf(stepId, 0))) === 'delayed', 10_000, 'the job to back off');
    expect(await queue.remove(jobIdOf(stepId, 0))).toBe(1);
    expect(await reconcilerFor(engine).reconcile()).toMatchObject({ ran: true, reenqueued: 1 });

    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(attemptStarts(audit).map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(ofType(audit, 'step.attempt_failed').map((e) => (e.data as any).attempt)).toEqual([1, 2, 3]);
    expect(ofType(audit, 'step.failed').map((e) => (e.data as any).attempt)).toEqual([3]);
    // attempt 2 failed with a 800 ms backoff (400 ms · 2): the re-created job must not count from 1.
    expect((ofType(audit, 'step.attempt_failed')[1].data as any).retryInMs).toBe(800);
    expectStartsAfterBackoff(audit);
  });

  it('a job delivered before the recorded retry time is delayed again, not started', async () => {
    const wf = { name: 'early', steps: [{ name: 'a', processor: 'flaky', attempts: 2, backoff: { type: 'fixed' as const, delayMs: 1500 } }] };
    await engine.startWorker({ workflows: [wf], processors: { flaky: async (ctx) => { if (ctx.step.attempt === 1) throw new Error('once'); return 'ok'; } } });
    const run = await engine.drover.createRun({ workflow: 'early' });
    const stepId = (await engine.drover.getRun(run.id)).steps[0].id;
    const queue = engine.backend.queue('default');
    const jobId = jobIdOf(stepId, 0);
    await eventually(async () => (await queue.getJobState(jobId)) === 'delayed', 10_000, 'the retry delayed');
    // Someone promotes the delayed job (Bull Board's "promote"): BullMQ delivers it at once.
    await (await queue.getJob(jobId))!.promote();

    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('succeeded');
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(attemptStarts(audit).map((s) => s.attempt)).toEqual([1, 2]);
    expectStartsAfterBackoff(audit);
  });

  it('a start that cannot be recorded burns no attempt: the job is put back, not failed by BullMQ', async () => {
    // The first start of a step fails in Postgres (a sequence is not rolled back with the failed statement).
    await engine.sql.query(`
      CREATE SEQUENCE public.start_failures;
      CREATE FUNCTION public.fail_first_start() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('public.start_failures') = 1 THEN RAISE EXCEPTION 'injected: the start could not be recorded'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_first_start BEFORE UPDATE ON drover.steps FOR EACH ROW
        WHEN (OLD.status = 'queued' AND NEW.status = 'running') EXECUTE FUNCTION public.fail_first_start();`);
    const wf = { name: 'once', steps: [{ name: 'a', processor: 'ok', attempts: 1 }] };
    // Every start written at once (recordStartAfterMs 0): the start statement is the one that fails.
    await engine.startWorker({ workflows: [wf], processors: { ok: async (ctx) => `attempt ${ctx.step.attempt}` }, recordStartAfterMs: 0 });
    const run = await engine.drover.createRun({ workflow: 'once' });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 15_000 });
    expect(done).toMatchObject({ status: 'succeeded', output: { a: 'attempt 1' } });
    expect((await engine.sql.query(`SELECT last_value::int AS n FROM public.start_failures`))[0].n).toBeGreaterThanOrEqual(2);
  });
});
