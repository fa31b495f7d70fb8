import { randomUUID } from 'node:crypto';
import { StepStore } from '../src/steps/step-store';
import { createEngine, type EngineHarness } from './helpers/engine';

// The group-committed transitions, driven directly with the batches a busy
// worker forms. Storage only: the queue backend plays no part here.
describe('batched transitions', () => {
  let engine: EngineHarness;
  let store: StepStore;
  beforeEach(async () => {
    engine = await createEngine('redis');
    store = new StepStore(engine.sql);
    await engine.drover.registerWorkflows([
      // a and b join into c; e is a second sink.
      { name: 'join', steps: [
        { name: 'a', processor: 'p' }, { name: 'b', processor: 'p' }, { name: 'e', processor: 'p' },
        { name: 'c', processor: 'p', dependsOn: ['a', 'b'] },
      ] },
      { name: 'wide', steps: [
        ...Array.from({ length: 10 }, (_, i) => ({ name: `r${i}`, processor: 'p' })),
        { name: 'z', processor: 'p', dependsOn: Array.from({ length: 10 }, (_, i) => `r${i}`) },
      ] },
      { name: 'split', steps: [{ name: 'x', processor: 'p' }, { name: 'y', processor: 'p' }] },
    ]);
  });
  afterEach(async () => { await engine.close(); });

  const stepsOf = async (runId: string): Promise<Record<string, { id: string; status: string; deps_remaining: number }>> => {
    const rows = await engine.sql.query(`SELECT id, name, status, deps_remaining FROM drover.steps WHERE run_id = $1`, [runId]);
    return Object.fromEntries(rows.map((r) => [r.name, r]));
  };
  const events = async (runId: string, type: string) =>
    (await engine.sql.query(`SELECT step_id FROM drover.audit_events WHERE run_id = $1 AND type = $2`, [runId, type])).length;
  const start = async (stepIds: string[]) => {
    const rows = await engine.sql.query(`SELECT id, run_id, processor FROM drover.steps WHERE id = ANY ($1::uuid[])`, [stepIds]);
    const byId = new Map<string, { run_id: string; processor: string }>(rows.map((r) => [r.id, r]));
    const starts = stepIds.map((stepId) => ({ stepId, runId: byId.get(stepId)!.run_id, processor: byId.get(stepId)!.processor, generation: 0, lease: randomUUID() }));
    const started = await store.markStepsRunning(starts, 'w1');
    return { starts, started };
  };

  it('joins, promotes and finishes runs correctly when their steps succeed together', async () => {
    const runs = [await engine.drover.createRun({ workflow: 'join' }), await engine.drover.createRun({ workflow: 'join' })];
    const steps = await Promise.all(runs.map((r) => stepsOf(r.id)));
    const roots = steps.flatMap((s) => [s.a.id, s.b.id, s.e.id]);
    const { starts, started } = await start(roots);
    expect(started.size).toBe(6);
    expect([...started.values()].every((s) => s.attempt === 1 && !s.takeover)).toBe(true);
    for (const run of runs) {
      expect((await engine.drover.getRun(run.id)).status).toBe('running');
      expect(await events(run.id, 'run.started')).toBe(1);
    }

    // a and b of both runs in one batch, plus a success under a lease nobody holds.
    const lease = (stepId: string) => starts.find((s) => s.stepId === stepId)!.lease;
    const ab = steps.flatMap((s) => [s.a.id, s.b.id]);
    const outcomes = await store.markStepsSucceeded([
      ...ab.map((stepId) => ({ stepId, lease: lease(stepId), output: { from: stepId } })),
      { stepId: steps[0].e.id, lease: randomUUID(), output: 'stale' },
    ], 'worker:w1');
    expect(outcomes.size).toBe(4);
    expect(outcomes.has(lease(steps[0].e.id))).toBe(false);
    for (const [i, run] of runs.entries()) {
      const after = await stepsOf(run.id);
      expect(after.c).toMatchObject({ status: 'queued', deps_remaining: 0 });
      expect(await events(run.id, 'step.queued')).toBe(3 + 1); // three roots at creation, c once
      const promoted = [...outcomes.values()].filter((o) => o.runId === run.id).flatMap((o) => o.promoted.map((p) => p.id));
      expect(promoted).toEqual([steps[i].c.id]);
      expect([...outcomes.values()].filter((o) => o.runId === run.id).map((o) => o.openSteps)).toEqual([2, 2]);
    }
    expect((await stepsOf(runs[0].id)).e.status).toBe('running');

    // c of both runs and e of run 0 together: run 0 ends here, run 1 waits for e.
    const c = await start(steps.map((s) => s.c.id));
    const last = await store.markStepsSucceeded([
      { stepId: steps[0].c.id, lease: c.starts[0].lease, output: 'c0' },
      { stepId: steps[1].c.id, lease: c.starts[1].lease, output: 'c1' },
      { stepId: steps[0].e.id, lease: lease(steps[0].e.id), output: 'e0' },
    ], 'worker:w1');
    // The finish is reported once per run (on one of its outcomes), so it is counted once.
    const run0 = [c.starts[0].lease, lease(steps[0].e.id)].map((l) => last.get(l));
    expect(run0.map((o) => o?.openSteps)).toEqual([0, 0]);
    expect(run0.map((o) => o?.runStatus).sort()).toEqual(['succeeded', null].sort());
    expect(last.get(c.starts[1].lease)).toMatchObject({ runStatus: null, openSteps: 1 });
    expect(await engine.drover.getRun(runs[0].id)).toMatchObject({ status: 'succeeded', output: { c: 'c0', e: 'e0' } });
    const open = await engine.drover.getRun(runs[1].id);
    expect(open).toMatchObject({ status: 'running', output: null });

    const e1 = await store.markStepSucceeded(steps[1].e.id, lease(steps[1].e.id), 'e1', 'worker:w1');
    expect(e1).toMatchObject({ runStatus: 'succeeded', openSteps: 0 });
    expect(await engine.drover.getRun(runs[1].id)).toMatchObject({ status: 'succeeded', output: { c: 'c1', e: 'e1' } });
    for (const run of runs) expect(await events(run.id, 'run.succeeded')).toBe(1);
  });

  it('finishes a run with a failed step when its last open step succeeds, listing the failure', async () => {
    const run = await engine.drover.createRun({ workflow: 'split' });
    const s = await stepsOf(run.id);
    const { starts } = await start([s.x.id, s.y.id]);
    const leaseOf = (id: string) => starts.find((r) => r.stepId === id)!.lease;
    const failed = await store.markStepFailed(s.x.id, leaseOf(s.x.id), { name: 'Error', message: 'boom' }, 'worker:w1', true);
    expect(failed).toMatchObject({ openSteps: 1, runStatus: null });
    const y = await store.markStepSucceeded(s.y.id, leaseOf(s.y.id), 'fine', 'worker:w1');
    expect(y).toMatchObject({ openSteps: 0, runStatus: 'failed' });
    expect(await engine.drover.getRun(run.id)).toMatchObject({ status: 'failed', output: null, error: { failedSteps: ['x'] } });
  });

  it('counts every join once when several workers succeed parents of the same joins at once', async () => {
    const runs = await Promise.all(Array.from({ length: 20 }, () => engine.drover.createRun({ workflow: 'wide' })));
    const roots: string[] = [];
    for (const run of runs) {
      const s = await stepsOf(run.id);
      for (let i = 0; i < 10; i++) roots.push(s[`r${i}`].id);
    }
    const { starts } = await start(roots);
    // Four "workers", each holding steps of every run, in opposite orders.
    const batches = [0, 1, 2, 3].map((w) => starts.filter((_, i) => i % 4 === w));
    batches[1].reverse();
    batches[3].reverse();
    const results = await Promise.all(batches.map((batch) =>
      store.markStepsSucceeded(batch.map((b) => ({ stepId: b.stepId, lease: b.lease, output: null })), 'worker:w')));
    expect(results.reduce((n, r) => n + r.size, 0)).toBe(200);
    const promoted = results.flatMap((r) => [...r.values()].flatMap((o) => o.promoted.map((p) => p.id)));
    expect(promoted).toHaveLength(20);
    expect(new Set(promoted).size).toBe(20);
    const [counts] = await engine.sql.query(`
      SELECT count(*) FILTER (WHERE name = 'z' AND status = 'queued' AND deps_remaining = 0)::int AS joined,
             (SELECT count(*)::int FROM drover.runs WHERE open_steps = 1 AND status = 'running') AS runs
        FROM drover.steps`);
    expect(counts).toEqual({ joined: 20, runs: 20 });
  });
});
