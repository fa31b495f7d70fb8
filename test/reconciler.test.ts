import { randomUUID } from 'node:crypto';
import IORedis from 'ioredis';
import { Dispatcher } from '../src/queue/dispatcher';
import { silentLogger } from '../src/telemetry/logger';
import { RunService } from '../src/runs/run-service';
import { RunStore } from '../src/runs/run-store';
import { StepStore, type ReadyStep } from '../src/steps/step-store';
import { WorkflowRegistry } from '../src/workflows/workflow-registry';
import { describeEachBackend, testRedisUrl } from './helpers/env';
import { createEngine, eventually, reconcilerFor, sleep, type EngineHarness } from './helpers/engine';
import { Calls } from './helpers/fixtures';

/** A dispatcher that "crashes" between commit and enqueue: it never enqueues. */
class CrashingDispatcher extends Dispatcher {
  async enqueue(_steps: ReadyStep[]): Promise<void> {
    // the process died here
  }
}

const FAST_RECONCILER = { intervalMs: 300, queuedGraceMs: 500, heartbeatTimeoutMs: 1500 };

/**
 * Redis restarted empty, for one test's queues only: deletes every key of the
 * namespace at once (a script runs atomically), as FLUSHALL would, without
 * touching the queues of tests running beside it on the same server.
 * @returns how many keys it deleted
 */
async function flushNamespace(namespace: string): Promise<number> {
  const redis = new IORedis(testRedisUrl());
  try {
    return await redis.eval(`
      local keys = redis.call('KEYS', ARGV[1])
      for i = 1, #keys, 1000 do redis.call('DEL', unpack(keys, i, math.min(i + 999, #keys))) end
      return #keys`, 0, `bull:${namespace}.*`) as number;
  } finally {
    redis.disconnect();
  }
}

describeEachBackend('the reconciler', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });


  it('enqueues a step whose commit happened but whose enqueue never did', async () => {
    const wf = { name: 'lost', steps: [{ name: 'a', processor: 'noop' }] };
    await engine.drover.registerWorkflows([wf]);
    const sql = engine.sql;
    const crashing = new RunService(sql, new RunStore(sql), new WorkflowRegistry(sql), new CrashingDispatcher(engine.backend, silentLogger), silentLogger, engine.drover.metrics);
    const { run } = await crashing.createRun({ workflow: 'lost' }, 'test');
    const calls = new Calls();
    await engine.startWorker({ workflows: [wf], processors: { noop: async (ctx) => { calls.record(ctx.step.name); return 'done'; } }, reconciler: FAST_RECONCILER });
    const finished = await engine.drover.waitForRun(run.id, { timeoutMs: 15_000 });
    expect(finished.status).toBe('succeeded');
    expect(calls.get('a')).toBe(1);
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.find((e) => e.type === 'step.reenqueued')).toMatchObject({ actor: 'reconciler' });
  });

  it('finishes a run whose steps are all terminal, and removes jobs of terminal steps', async () => {
    const wf = { name: 'settled', steps: [{ name: 'a', processor: 'noop' }] };
    await engine.drover.registerWorkflows([wf]);
    const run = await engine.drover.createRun({ workflow: 'settled' });
    // Crash injected between the step's success and the run's finish: the job is gone, the run still open.
    await engine.sql.query(`UPDATE drover.steps SET status = 'succeeded', output = '7'::jsonb, finished_at = now() WHERE run_id = $1`, [run.id]);
    await engine.sql.query(`UPDATE drover.runs SET open_steps = 0 WHERE id = $1`, [run.id]);
    const report = await reconcilerFor(engine).reconcile();
    expect(report).toMatchObject({ ran: true, runsFinished: 1, jobsRemoved: 1 });
    const after = await engine.drover.getRun(run.id);
    expect(after).toMatchObject({ status: 'succeeded', output: { a: 7 } });
    expect((await engine.drover.getAudit(run.id)).items.pop()).toMatchObject({ type: 'run.succeeded', actor: 'reconciler' });
    expect(await engine.backend.queue('default').getJobState(`${after.steps[0].id}-g0`)).toBe('unknown');
  });

  it('re-queues a step left running whose job BullMQ already finished (a dropped result)', async () => {
    const wf = { name: 'dropped', steps: [{ name: 'a', processor: 'noop' }] };
    await engine.drover.registerWorkflows([wf]);
    // A live worker holds the step, but its attempt's result was dropped: the job completed, the row says running.
    await engine.sql.query(`INSERT INTO drover.workers (id, hostname, pid, queues, concurrency, version, status)
      VALUES ('alive', 'h', 1, '{default}', 1, '0', 'active')`);
    const run = await engine.drover.createRun({ workflow: 'dropped' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [run.id]);
    await new StepStore(engine.sql).markStepRunning(step.id, run.id, 0, randomUUID(), 'alive');
    const raw = engine.backend.createWorker('default', async () => ({ dropped: true }), { concurrency: 1 });
    const jobId = `${step.id}-g0`;
    await eventually(async () => (await engine.backend.queue('default').getJobState(jobId)) === 'completed', 10_000, 'the job to complete');
    await raw.close();

    const report = await reconcilerFor(engine).reconcile();
    expect(report.requeued).toBe(1);
    const [row] = await engine.sql.query(`SELECT status FROM drover.steps WHERE id = $1`, [step.id]);
    expect(row.status).toBe('queued');
    expect(await engine.backend.queue('default').getJobState(jobId)).toBe('waiting');
    expect((await engine.drover.getAudit(run.id)).items.pop()).toMatchObject({ type: 'step.requeued', actor: 'reconciler' });
  });

  it('never runs two passes at once', async () => {
    const client = await engine.sql.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(7312004512)');
      expect((await reconcilerFor(engine).reconcile()).ran).toBe(false);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect((await reconcilerFor(engine).reconcile()).ran).toBe(true);
  });

  it('marks a stopped worker stopped and a silent one gone', async () => {
    const wf = { name: 'hb', steps: [{ name: 'a', processor: 'noop' }] };
    const stopped = await engine.startWorker({ workflows: [wf], processors: { noop: async () => null } });
    await engine.startWorker({ workflows: [wf], processors: { noop: async () => null } });
    await stopped.close();
    // A worker that stopped heartbeating without closing (its process was killed).
    await engine.sql.query(`INSERT INTO drover.workers (id, hostname, pid, queues, concurrency, version, status, last_heartbeat_at)
      VALUES ('silent', 'h', 1, '{default}', 1, '0', 'active', now() - interval '1 minute')`);
    const report = await reconcilerFor(engine).reconcile();
    expect(report.workersGone).toBe(1);
    const workers = await engine.drover.listWorkers();
    expect(Object.fromEntries(workers.map((w) => [w.id, w.status]))).toEqual({ [stopped.id]: 'stopped', silent: 'gone', [workers.find((w) => w.status === 'active')!.id]: 'active' });
    expect(workers.find((w) => w.id === stopped.id)).toMatchObject({ queues: ['default'], concurrency: 10, pid: process.pid });
  });
});

// More live rows than one batch: a backlog of long-delayed steps must not pin the window.
describeEachBackend('the reconciler behind a backlog larger than its batch', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const BATCH = 50;
  const BACKLOG = 60;
  const wf = { name: 'backlog', steps: [{ name: 'a', processor: 'noop' }] };
  const reconciler = () => reconcilerFor(engine, { batchSize: BATCH });
  /** Runs delayed an hour: their steps are queued, their jobs delayed (live). */
  const backlog = async () => {
    await engine.drover.registerWorkflows([wf]);
    const batch = await engine.drover.createRuns(Array.from({ length: BACKLOG }, () => ({ workflow: 'backlog', delayMs: 3_600_000 })));
    return engine.sql.query(`SELECT id, run_id FROM drover.steps WHERE run_id = ANY ($1::uuid[])`, [batch.items.map((i) => i.id)]);
  };
  const stepOf = async (runId: string) => (await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1`, [runId]))[0].id as string;
  const passes = Math.ceil((BACKLOG + 1) / BATCH);

  it('re-enqueues a lost job queued after the backlog', async () => {
    await backlog();
    const lost = await engine.drover.createRun({ workflow: 'backlog' });
    const jobId = `${await stepOf(lost.id)}-g0`;
    await engine.backend.queue('default').remove(jobId);
    const r = reconciler();
    let reenqueued = 0;
    for (let i = 0; i < passes; i++) reenqueued += (await r.reconcile()).reenqueued;
    expect(reenqueued).toBe(1);
    expect(await engine.backend.queue('default').getJobState(jobId)).toBe('waiting');
    await engine.startWorker({ workflows: [wf], processors: { noop: async () => 'done' } });
    expect((await engine.drover.waitForRun(lost.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
  });

  it('re-queues a running step of a gone worker started after the backlog', async () => {
    const store = new StepStore(engine.sql);
    await engine.sql.query(`INSERT INTO drover.workers (id, hostname, pid, queues, concurrency, version, status)
      VALUES ('alive', 'h', 1, '{default}', 1, '0', 'active'), ('dead', 'h', 2, '{default}', 1, '0', 'gone')`);
    // A live worker holds every backlog step (their jobs are delayed, not lost): nothing to repair there.
    for (const step of await backlog()) await store.markStepRunning(step.id, step.run_id, 0, randomUUID(), 'alive');
    const lost = await engine.drover.createRun({ workflow: 'backlog' });
    const stepId = await stepOf(lost.id);
    await store.markStepRunning(stepId, lost.id, 0, randomUUID(), 'dead');
    await engine.backend.queue('default').remove(`${stepId}-g0`);
    const r = reconciler();
    let requeued = 0;
    for (let i = 0; i < passes; i++) requeued += (await r.reconcile()).requeued;
    expect(requeued).toBe(1);
    await engine.startWorker({ workflows: [wf], processors: { noop: async () => 'done' } });
    expect((await engine.drover.waitForRun(lost.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
  });

  it('removes a stale job behind the live ones', async () => {
    await backlog();
    const done = await engine.drover.createRun({ workflow: 'backlog', delayMs: 1_800_000 });
    const stepId = await stepOf(done.id);
    await engine.sql.query(`UPDATE drover.steps SET status = 'succeeded', output = '1'::jsonb, finished_at = now() WHERE id = $1`, [stepId]);
    const r = reconciler();
    let removed = 0;
    for (let i = 0; i < passes; i++) removed += (await r.reconcile()).jobsRemoved;
    expect(removed).toBe(1);
    expect(await engine.backend.queue('default').getJobState(`${stepId}-g0`)).toBe('unknown');
  });
});

describe('the queue is disposable [redis]', () => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine('redis'); });
  afterEach(async () => { await engine.close(); });

  it('finishes 50 running runs after their queues are flushed, completing no step twice', async () => {
    const calls = new Calls();
    const wf = { name: 'flushed', steps: [{ name: 'a', processor: 'work' }, { name: 'b', processor: 'work', dependsOn: ['a'] }, { name: 'c', processor: 'work', dependsOn: ['b'] }] };
    const processors = { work: async (ctx: any) => { calls.record(`${ctx.run.id}:${ctx.step.name}`); await sleep(100); return ctx.step.name; } };
    await engine.startWorker({ workflows: [wf], processors, concurrency: 10, reconciler: FAST_RECONCILER });
    await engine.startWorker({ workflows: [wf], processors, concurrency: 10, reconciler: FAST_RECONCILER });
    const batch = await engine.drover.createRuns(Array.from({ length: 50 }, () => ({ workflow: 'flushed' })));
    await eventually(async () => {
      const [r] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.steps WHERE status = 'succeeded'`);
      return r.n >= 20;
    }, 20_000, 'some progress');
    expect(await flushNamespace(engine.namespace)).toBeGreaterThan(0);
    for (const item of batch.items) expect((await engine.drover.waitForRun(item.id!, { timeoutMs: 45_000 })).status).toBe('succeeded');
    const [doubled] = await engine.sql.query(`SELECT count(*)::int AS n FROM (SELECT step_id FROM drover.audit_events
      WHERE type = 'step.succeeded' GROUP BY step_id HAVING count(*) > 1) x`);
    expect(doubled.n).toBe(0);
    const [repairs] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE actor = 'reconciler'`);
    expect(repairs.n).toBeGreaterThan(0);
    expect(calls.counts.size).toBe(150);
  }, 90_000);
});
