import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { readStarts } from '../src/steps/attempt-start';
import { StepStore } from '../src/steps/step-store';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { createEngine, eventually, reconcilerFor, sleep, type EngineHarness } from './helpers/engine';
import { compiled, startNode, type Child } from './helpers/processes';
import { attemptStarts } from './helpers/fixtures';

const WORKER = path.join(__dirname, 'fixtures/worker-process.ts');

/**
 * The one-write path (CONTRACT §2): an attempt that ends within
 * `recordStartAfterMs` writes its start with its outcome, in one row update and
 * one audit event; a longer one is written `running` at the threshold.
 */
describeEachBackend('one durable write per quick attempt', (backend) => {
  let engine: EngineHarness;
  const children: Child[] = [];
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => c.stop()));
    await engine.close();
  });

  const single = { name: 'single', steps: [{ name: 'only', processor: 'ok' }] };

  /** Counts row updates of steps and runs from here on (a trigger in this test's own database). */
  async function countUpdates(): Promise<() => Promise<Record<string, number>>> {
    await engine.sql.query(`
      CREATE TABLE public.row_updates (tbl text, status text);
      CREATE FUNCTION public.count_update() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO public.row_updates VALUES (TG_TABLE_NAME, NEW.status); RETURN NEW; END $$;
      CREATE TRIGGER count_update AFTER UPDATE ON drover.steps FOR EACH ROW EXECUTE FUNCTION public.count_update();
      CREATE TRIGGER count_update AFTER UPDATE ON drover.runs FOR EACH ROW EXECUTE FUNCTION public.count_update();`);
    return async () => {
      const rows = await engine.sql.query(`SELECT tbl || ':' || status AS k, count(*)::int AS n FROM public.row_updates GROUP BY 1`);
      return Object.fromEntries(rows.map((r) => [r.k, r.n]));
    };
  }

  it('a quick single-step run: one update of its step, one of its run, and two audit events while it executes', async () => {
    const updates = await countUpdates();
    await engine.startWorker({ workflows: [single], processors: { ok: async () => ({ fine: true }) } });
    const created = await engine.drover.createRun({ workflow: 'single' });
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 15_000 });
    expect(run).toMatchObject({ status: 'succeeded', output: { only: { fine: true } } });
    expect(await updates()).toEqual({ 'steps:succeeded': 1, 'runs:succeeded': 1 });

    const step = run.steps[0];
    expect(step).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(Date.parse(step.startedAt!)).toBeLessThanOrEqual(Date.parse(step.finishedAt!));
    expect(Date.parse(run.startedAt!)).toBe(Date.parse(step.startedAt!));
    const [{ worker_id: workerId }] = await engine.sql.query(`SELECT worker_id FROM drover.steps WHERE id = $1`, [step.id]);
    expect(workerId).toEqual(expect.any(String));

    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.map((e) => e.type)).toEqual(['run.created', 'step.queued', 'step.succeeded', 'run.succeeded']);
    const succeeded = audit[2];
    expect(succeeded.data).toEqual({ attempt: 1, startedAt: expect.any(String), worker: workerId });
    expect(Date.parse((succeeded.data as any).startedAt)).toBe(Date.parse(step.startedAt!));
    expect(audit[3].data).toEqual({ startedAt: expect.any(String) });
  });

  it('a quick failed attempt writes its start with its failure; the retry is attempt 2', async () => {
    const wf = { name: 'flaky', steps: [{ name: 'only', processor: 'flaky', attempts: 2, backoff: { type: 'fixed' as const, delayMs: 300 } }] };
    await engine.startWorker({
      workflows: [wf],
      processors: { flaky: async (ctx) => { if (ctx.step.attempt === 1) throw new Error('first fails'); return ctx.step.attempt; } },
    });
    const created = await engine.drover.createRun({ workflow: 'flaky' });
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 15_000 });
    expect(run).toMatchObject({ status: 'succeeded', output: { only: 2 } });
    expect(run.steps[0].attempts).toBe(2);
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.map((e) => e.type)).toEqual(['run.created', 'step.queued', 'run.started', 'step.attempt_failed', 'step.succeeded', 'run.succeeded']);
    expect(audit[3].data).toMatchObject({ attempt: 1, error: { message: 'first fails' }, startedAt: expect.any(String), worker: expect.any(String) });
    expect(attemptStarts(audit).map((s) => [s.attempt, s.recorded])).toEqual([[1, false], [2, false]]);
  });

  it('an attempt longer than recordStartAfterMs is written running while it runs, from when it started', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    await engine.startWorker({
      workflows: [single], recordStartAfterMs: 300,
      processors: { ok: async () => { await held; return 'done'; } },
    });
    const created = await engine.drover.createRun({ workflow: 'single' });
    const stepId = (await engine.drover.getRun(created.id)).steps[0].id;
    // Before the threshold it is not written (still queued); after it, running.
    const running = await eventually(async () => {
      const [row] = await engine.sql.query(`SELECT status, attempt, worker_id, started_at FROM drover.steps WHERE id = $1`, [stepId]);
      return row.status === 'running' ? row : undefined;
    }, 10_000, 'the step written running');
    expect(running).toMatchObject({ attempt: 1, worker_id: expect.any(String) });
    const audit = (await engine.drover.getAudit(created.id)).items;
    const started = audit.find((e) => e.type === 'step.started')!;
    expect(started.data).toMatchObject({ attempt: 1, takeover: false });
    expect(Date.parse((started.data as any).startedAt)).toBe((running.started_at as Date).getTime());
    // started_at is when the attempt began, about the threshold before the running write.
    expect(Date.parse(started.at) - (running.started_at as Date).getTime()).toBeGreaterThanOrEqual(250);
    expect((await engine.drover.getRun(created.id)).status).toBe('running');
    release();
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 15_000 });
    expect(run).toMatchObject({ status: 'succeeded', output: { only: 'done' } });
    const after = (await engine.drover.getAudit(created.id)).items;
    expect(after.map((e) => e.type)).toEqual(['run.created', 'step.queued', 'run.started', 'step.started', 'step.succeeded', 'run.succeeded']);
    expect(after[4].data).toEqual({ attempt: 1 });
  });

  it('a cancel reaches an attempt whose start is not written: it sees its abort and the step ends cancelled', async () => {
    let sawAbort = false;
    let returned = false;
    let attemptBegan = false;
    await engine.startWorker({
      workflows: [single], recordStartAfterMs: 60_000,
      processors: {
        ok: async (ctx) => {
          attemptBegan = true;
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { sawAbort = true; resolve(); }, { once: true }));
          returned = true;
          return 'late';
        },
      },
    });
    const created = await engine.drover.createRun({ workflow: 'single' });
    await eventually(() => attemptBegan, 10_000, 'the attempt to begin');
    expect((await engine.drover.getRun(created.id)).steps[0].status).toBe('queued');
    await engine.drover.cancelRun(created.id, { actor: 'test' });
    await eventually(() => returned, 10_000, 'the attempt to see its abort');
    await sleep(300);
    const run = await engine.drover.getRun(created.id);
    expect(sawAbort).toBe(true);
    expect(run.status).toBe('cancelled');
    expect(run.steps[0]).toMatchObject({ status: 'cancelled', output: null, attempts: 0 });
    const types = (await engine.drover.getAudit(run.id)).items.map((e) => e.type);
    expect(types).toEqual(['run.created', 'step.queued', 'run.cancelled', 'step.cancelled']);
  });

  it('the reconciler leaves a queued step alone while its job is active with an unwritten attempt, which then succeeds once', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => { release = r; });
    let began = 0;
    await engine.startWorker({
      workflows: [single], recordStartAfterMs: 60_000,
      processors: { ok: async () => { began++; await held; return 'once'; } },
    });
    const created = await engine.drover.createRun({ workflow: 'single' });
    await eventually(() => began === 1, 10_000, 'the attempt to begin');
    // Several lease checks (every 100 ms here) and a reconciler pass see the unwritten attempt.
    await sleep(400);
    expect(await reconcilerFor(engine).reconcile()).toMatchObject({ ran: true, reenqueued: 0, requeued: 0 });
    release();
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 15_000 });
    expect(run).toMatchObject({ status: 'succeeded', output: { only: 'once' } });
    expect(began).toBe(1);
    expect((await engine.drover.getAudit(run.id)).items.filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
  });

  it('a worker killed within the threshold leaves no attempt; the redelivery after the stall writes its start at once', async () => {
    await engine.drover.registerWorkflows([
      { name: 'slow-chain', steps: [{ name: 'a', processor: 'slow' }, { name: 'b', processor: 'noop', dependsOn: ['a'] }] },
    ]);
    const spawn = (id: string, env: Record<string, string> = {}) => {
      const child = startNode(compiled(WORKER), {
        DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend) ?? '', DROVER_NAMESPACE: engine.namespace, WORKER_ID: id, ...env,
      });
      children.push(child);
      return child;
    };
    const doomed = spawn('doomed', { RECORD_START_AFTER_MS: '60000' });
    await doomed.waitFor('ready');
    const created = await engine.drover.createRun({ workflow: 'slow-chain', input: { ms: 1500 } });
    await doomed.waitFor('attempt started');
    await doomed.stop('SIGKILL');
    const [row] = await engine.sql.query(`SELECT status, attempt FROM drover.steps WHERE run_id = $1 AND name = 'a'`, [created.id]);
    expect(row).toEqual({ status: 'queued', attempt: 0 });

    const survivor = spawn('survivor');
    await survivor.waitFor('ready');
    const run = await engine.drover.waitForRun(created.id, { timeoutMs: 40_000 });
    expect(run.status).toBe('succeeded');
    // The killed attempt is not counted; the stalled job's redelivery was written running at once (a crash loop counts).
    expect(run.steps[0]).toMatchObject({ name: 'a', status: 'succeeded', attempts: 1, output: { by: 'survivor' } });
    const aEvents = (await engine.drover.getAudit(run.id)).items.filter((e) => e.stepId === run.steps[0].id);
    expect(aEvents.map((e) => [e.type, e.actor])).toEqual([
      ['step.queued', 'client'], ['step.started', 'worker:survivor'], ['step.succeeded', 'worker:survivor'],
    ]);
  }, 60_000);

  it('the outcome is fenced on the step as the attempt read it: of two unwritten attempts one succeeds, a late running write loses', async () => {
    await engine.drover.registerWorkflows([single]);
    const created = await engine.drover.createRun({ workflow: 'single' });
    const stepId = (await engine.drover.getRun(created.id)).steps[0].id;
    const store = new StepStore(engine.sql);
    const req = (lease: string) => ({ stepId, runId: created.id, generation: 0, lease, processor: 'ok' });
    const [l1, l2] = [randomUUID(), randomUUID()];
    const read = await readStarts(engine.sql, [req(l1), req(l2)]);
    expect(read.get(l1)).toMatchObject({ attempt: 1, recorded: false });
    const start = { generation: 0, seenAttempt: 0, elapsedMs: 5, worker: 'w1' };
    const first = await store.markStepsSucceeded([{ stepId, lease: l1, output: 1, start }], 'worker:w1');
    expect(first.get(l1)).toMatchObject({ runStatus: 'succeeded' });
    const second = await store.markStepsSucceeded([{ stepId, lease: l2, output: 2, start }], 'worker:w1');
    expect(second.size).toBe(0);
    expect(await store.markAttemptFailed(stepId, l2, { name: 'Error', message: 'x' }, 'worker:w1', 10, start)).toBe(false);
    expect((await store.markStepsRunning([{ ...req(l2), seenAttempt: 0, elapsedMs: 1000 }], 'w1')).size).toBe(0);
    // Replayed under its lease (a lost reply), the first success answers its first outcome.
    const replay = await store.markStepsSucceeded([{ stepId, lease: l1, output: 1, start }], 'worker:w1');
    expect(replay.get(l1)).toMatchObject({ runId: created.id });
    const run = await engine.drover.getRun(created.id);
    expect(run).toMatchObject({ status: 'succeeded', output: { only: 1 } });
    expect(run.steps[0].attempts).toBe(1);
    expect((await engine.drover.getAudit(run.id)).items.filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
  });
});
