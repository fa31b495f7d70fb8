import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { RunStore } from '../src/runs/run-store';
import { StepStore } from '../src/steps/step-store';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';

// Transitions of one run racing each other at their most dangerous moment.
// A second connection holds a lock the transitions need, both transitions are
// started and seen waiting in pg_stat_activity, then the lock is released: with
// one lock order (the run row first) they queue up; with two they deadlock and
// Postgres aborts one of them. Storage only: the queue plays no part.
describe('one lock order for the transitions of a run', () => {
  let engine: EngineHarness;
  let store: StepStore;
  let runs: RunStore;
  let holder: Client;
  const actor = 'worker:w1';
  const boom = { name: 'Error', message: 'boom' };

  beforeEach(async () => {
    engine = await createEngine('redis');
    store = new StepStore(engine.sql);
    runs = new RunStore(engine.sql);
    holder = new Client({ connectionString: engine.databaseUrl });
    await holder.connect();
    await engine.drover.registerWorkflows([
      // Steps are scanned by (run_id, name): the names put the dependent first.
      { name: 'join', steps: [
        { name: 'a', processor: 'p' }, { name: 'b', processor: 'p' }, { name: 'c', processor: 'p', dependsOn: ['a', 'b'] },
      ] },
      { name: 'fan', steps: [
        { name: 'x', processor: 'p' }, { name: 'y', processor: 'p' }, { name: 'j', processor: 'p', dependsOn: ['x'] },
      ] },
      { name: 'chain', steps: [
        { name: 'z', processor: 'p' }, { name: 'y', processor: 'p' }, { name: 'c', processor: 'p', dependsOn: ['z'] },
      ] },
    ]);
  });
  afterEach(async () => {
    await holder.end().catch(() => undefined);
    await engine.close();
  });

  const stepsOf = async (runId: string): Promise<Record<string, { id: string; status: string; generation: number; processor: string }>> => {
    const rows = await engine.sql.query(`SELECT id, name, status, generation, processor FROM drover.steps WHERE run_id = $1`, [runId]);
    return Object.fromEntries(rows.map((r) => [r.name, r]));
  };
  /** Starts the named steps; returns their leases by name. */
  const start = async (runId: string, names: string[]): Promise<Record<string, string>> => {
    const steps = await stepsOf(runId);
    const leases = Object.fromEntries(names.map((n) => [n, randomUUID()]));
    const started = await store.markStepsRunning(names.map((n) => ({ stepId: steps[n].id, runId, generation: 0, lease: leases[n], processor: steps[n].processor })), 'w1');
    expect(started.size).toBe(names.length);
    return leases;
  };
  /** Resolves once `n` backends of this database wait on a lock, or the call just started has settled. */
  const waiting = async (n: number, started: Promise<unknown>) => {
    let settled = false;
    started.then(() => { settled = true; }, () => { settled = true; });
    await eventually(async () => {
      const [row] = await engine.sql.query(`
        SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
      return row.n >= n || settled;
    }, 10_000, `${n} transactions waiting on a lock`);
  };
  /** Holds a row lock on the given table row until `release()`. */
  const hold = async (table: 'runs' | 'steps', id: string) => {
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM drover.${table} WHERE id = $1 FOR NO KEY UPDATE`, [id]);
    return { release: () => holder.query('COMMIT') };
  };
  const events = async (runId: string, type: string) =>
    Number((await engine.sql.query(`SELECT count(*) AS n FROM drover.audit_events WHERE run_id = $1 AND type = $2`, [runId, type]))[0].n);

  it('success × final failure into one join', async () => {
    const run = await engine.drover.createRun({ workflow: 'join' });
    const s = await stepsOf(run.id);
    const lease = await start(run.id, ['a', 'b']);
    const lock = await hold('runs', run.id);
    const success = store.markStepSucceeded(s.a.id, lease.a, 'A', actor);
    await waiting(1, success);
    const failure = store.markStepFailed(s.b.id, lease.b, boom, actor, true);
    await waiting(2, failure);
    await lock.release();
    const [succeeded, failed] = await Promise.all([success, failure]);
    expect(succeeded).toMatchObject({ openSteps: 2, runStatus: null, promoted: [] });
    expect(failed).toMatchObject({ openSteps: 0, runStatus: 'failed', skipped: [{ id: s.c.id }] });
    expect(await stepsOf(run.id)).toMatchObject({ a: { status: 'succeeded' }, b: { status: 'failed' }, c: { status: 'skipped' } });
    expect(await engine.drover.getRun(run.id)).toMatchObject({ status: 'failed', error: { failedSteps: ['b'] } });
  });

  it('success × cancel', async () => {
    const run = await engine.drover.createRun({ workflow: 'fan' });
    const s = await stepsOf(run.id);
    const lease = await start(run.id, ['x', 'y']);
    const lock = await hold('runs', run.id);
    const success = store.markStepSucceeded(s.x.id, lease.x, 'X', actor);
    await waiting(1, success);
    const cancel = runs.cancelRun(run.id, 'api:test');
    await waiting(2, cancel);
    await lock.release();
    const [succeeded, cancelled] = await Promise.all([success, cancel]);
    expect(succeeded).toMatchObject({ openSteps: 2, promoted: [{ id: s.j.id }] });
    expect(cancelled?.map((c) => [c.id, c.previous]).sort()).toEqual([[s.j.id, 'queued'], [s.y.id, 'running']].sort());
    expect(await stepsOf(run.id)).toMatchObject({ x: { status: 'succeeded' }, y: { status: 'cancelled' }, j: { status: 'cancelled' } });
    expect((await engine.drover.getRun(run.id)).status).toBe('cancelled');
  });

  it('success × resume', async () => {
    const run = await engine.drover.createRun({ workflow: 'fan' });
    const s = await stepsOf(run.id);
    const lease = await start(run.id, ['x', 'y']);
    expect(await runs.cancelRun(run.id, 'api:test')).toHaveLength(3);
    // x's processor was still running when the run was cancelled; it reports success as the run is resumed.
    const lock = await hold('runs', run.id);
    const resume = runs.retryRun(run.id, 'api:test');
    await waiting(1, resume);
    const success = store.markStepSucceeded(s.x.id, lease.x, 'late', actor);
    await waiting(2, success);
    await lock.release();
    const [ready, succeeded] = await Promise.all([resume, success]);
    expect(succeeded).toBeNull();
    expect(ready?.map((r) => r.id).sort()).toEqual([s.x.id, s.y.id].sort());
    expect(await stepsOf(run.id)).toMatchObject({
      x: { status: 'queued', generation: 1 }, y: { status: 'queued', generation: 1 }, j: { status: 'pending', generation: 1 },
    });
    expect(await engine.drover.getRun(run.id)).toMatchObject({ status: 'running', output: null });
  });

  it('final failure × cancel', async () => {
    const run = await engine.drover.createRun({ workflow: 'chain' });
    const s = await stepsOf(run.id);
    const lease = await start(run.id, ['z', 'y']);
    const lock = await hold('steps', s.z.id);
    const failure = store.markStepFailed(s.z.id, lease.z, boom, actor, true);
    await waiting(1, failure);
    const cancel = runs.cancelRun(run.id, 'api:test');
    await waiting(2, cancel);
    await lock.release();
    const [failed, cancelled] = await Promise.all([failure, cancel]);
    expect(failed).toMatchObject({ openSteps: 1, runStatus: null, skipped: [{ id: s.c.id }] });
    expect(cancelled?.map((c) => c.id)).toEqual([s.y.id]);
    expect(await stepsOf(run.id)).toMatchObject({ z: { status: 'failed' }, c: { status: 'skipped' }, y: { status: 'cancelled' } });
    expect((await engine.drover.getRun(run.id)).status).toBe('cancelled');
    expect(await events(run.id, 'run.cancelled')).toBe(1);
  });
});

// A transition whose commit happened but whose reply was lost is retried with
// the same lease; the retry must return the first outcome and change nothing.
describe('transitions replayed under the same lease', () => {
  let engine: EngineHarness;
  let store: StepStore;
  const actor = 'worker:w1';

  beforeEach(async () => {
    engine = await createEngine('redis');
    store = new StepStore(engine.sql);
    await engine.drover.registerWorkflows([
      { name: 'once', steps: [{ name: 'a', processor: 'p', attempts: 1 }, { name: 'c', processor: 'p', dependsOn: ['a'] }] },
      { name: 'thrice', steps: [{ name: 'a', processor: 'p', attempts: 3 }] },
    ]);
  });
  afterEach(async () => { await engine.close(); });

  const stepOf = async (runId: string, name: string) =>
    (await engine.sql.query(`SELECT * FROM drover.steps WHERE run_id = $1 AND name = $2`, [runId, name]))[0];
  const events = async (runId: string, type: string) =>
    Number((await engine.sql.query(`SELECT count(*) AS n FROM drover.audit_events WHERE run_id = $1 AND type = $2`, [runId, type]))[0].n);

  it('a replayed start returns the same attempt and burns none', async () => {
    const run = await engine.drover.createRun({ workflow: 'once' });
    const a = await stepOf(run.id, 'a');
    const lease = randomUUID();
    const first = await store.markStepRunning(a.id, run.id, 0, lease, 'w1');
    const replay = await store.markStepRunning(a.id, run.id, 0, lease, 'w1');
    expect(first).toMatchObject({ attempt: 1, takeover: false });
    expect(replay).toEqual(first);
    expect(await stepOf(run.id, 'a')).toMatchObject({ attempt: 1, status: 'running', lease });
    expect(await events(run.id, 'step.started')).toBe(1);
    expect(await events(run.id, 'run.started')).toBe(1);
    // A different lease is a real takeover.
    expect(await store.markStepRunning(a.id, run.id, 0, randomUUID(), 'w2')).toMatchObject({ attempt: 2, takeover: true });
  });

  it('a replayed success returns the dependents the first one promoted', async () => {
    const run = await engine.drover.createRun({ workflow: 'once' });
    const a = await stepOf(run.id, 'a');
    const c = await stepOf(run.id, 'c');
    const lease = randomUUID();
    await store.markStepRunning(a.id, run.id, 0, lease, 'w1');
    const first = await store.markStepSucceeded(a.id, lease, { v: 1 }, actor);
    const replay = await store.markStepSucceeded(a.id, lease, { v: 1 }, actor);
    expect(first).toMatchObject({ openSteps: 1, runStatus: null, promoted: [{ id: c.id, generation: 0 }] });
    expect(replay).toEqual(first);
    expect(await events(run.id, 'step.succeeded')).toBe(1);
    expect(await events(run.id, 'step.queued')).toBe(2); // a at creation, c once
    expect((await engine.drover.getRun(run.id)).status).toBe('running');
    // A stale lease is still refused.
    expect(await store.markStepSucceeded(a.id, randomUUID(), null, actor)).toBeNull();
  });

  it('a replayed final failure returns the first outcome', async () => {
    const run = await engine.drover.createRun({ workflow: 'once' });
    const a = await stepOf(run.id, 'a');
    const lease = randomUUID();
    await store.markStepRunning(a.id, run.id, 0, lease, 'w1');
    const error = { name: 'Error', message: 'boom' };
    const first = await store.markStepFailed(a.id, lease, error, actor, true);
    const replay = await store.markStepFailed(a.id, lease, error, actor, true);
    expect(first).toMatchObject({ openSteps: 0, runStatus: 'failed' });
    expect(replay).toMatchObject({ runId: run.id, openSteps: 0, runStatus: 'failed' });
    expect(await events(run.id, 'step.failed')).toBe(1);
    expect(await events(run.id, 'run.failed')).toBe(1);
    expect(await store.markStepFailed(a.id, randomUUID(), error, actor, true)).toBeNull();
  });

  it('a replayed failed attempt is recorded once and still answers recorded', async () => {
    const run = await engine.drover.createRun({ workflow: 'thrice' });
    const a = await stepOf(run.id, 'a');
    const lease = randomUUID();
    await store.markStepRunning(a.id, run.id, 0, lease, 'w1');
    const error = { name: 'Error', message: 'flaky' };
    expect(await store.markAttemptFailed(a.id, lease, error, actor, 100)).toBe(true);
    expect(await store.markAttemptFailed(a.id, lease, error, actor, 100)).toBe(true);
    expect(await events(run.id, 'step.attempt_failed')).toBe(1);
    expect(await stepOf(run.id, 'a')).toMatchObject({ status: 'queued', attempt: 1 });
    expect(await store.markAttemptFailed(a.id, randomUUID(), error, actor, 100)).toBe(false);
  });
});
