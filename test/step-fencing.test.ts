import { randomUUID } from 'node:crypto';
import { Dispatcher } from '../src/queue/dispatcher';
import { silentLogger } from '../src/telemetry/logger';
import { RunStore } from '../src/runs/run-store';
import { StepStore } from '../src/steps/step-store';
import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';

// Drives the fenced transitions directly, as racing workers would.
describeEachBackend('fenced transitions', (backend) => {
  let engine: EngineHarness;
  let store: StepStore;
  let runs: RunStore;
  beforeEach(async () => {
    engine = await createEngine(backend);
    store = new StepStore(engine.sql);
    runs = new RunStore(engine.sql);
    await engine.drover.registerWorkflows([{ name: 'one', steps: [{ name: 'a', processor: 'p' }, { name: 'b', processor: 'p', dependsOn: ['a'] }] }]);
  });
  afterEach(async () => { await engine.close(); });

  async function newStep() {
    const run = await engine.drover.createRun({ workflow: 'one' });
    const [step] = await engine.sql.query(`SELECT id FROM drover.steps WHERE run_id = $1 AND name = 'a'`, [run.id]);
    return { runId: run.id, stepId: step.id as string };
  }
  const succeededEvents = async (stepId: string) =>
    (await engine.sql.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE step_id = $1 AND type = 'step.succeeded'`, [stepId]))[0].n;

  it('drops the late result of a zombie whose stalled attempt was taken over', async () => {
    const { runId, stepId } = await newStep();
    const zombie = randomUUID();
    const heir = randomUUID();
    expect(await store.markStepRunning(stepId, runId, 0, zombie, 'w1')).toMatchObject({ attempt: 1, takeover: false });
    expect(await store.markStepRunning(stepId, runId, 0, heir, 'w2')).toMatchObject({ attempt: 2, takeover: true });
    expect(await store.markStepSucceeded(stepId, zombie, { by: 'zombie' }, 'worker:w1')).toBeNull();
    const done = await store.markStepSucceeded(stepId, heir, { by: 'heir' }, 'worker:w2');
    expect(done?.promoted).toHaveLength(1);
    // The same lease again is a replay (a lost reply): the first outcome, nothing written.
    expect(await store.markStepSucceeded(stepId, heir, { by: 'heir again' }, 'worker:w2')).toEqual(done);
    expect(await store.markStepRunning(stepId, runId, 0, randomUUID(), 'w3')).toBeNull();
    const [row] = await engine.sql.query(`SELECT status, output FROM drover.steps WHERE id = $1`, [stepId]);
    expect(row).toEqual({ status: 'succeeded', output: { by: 'heir' } });
    expect(await succeededEvents(stepId)).toBe(1);
  });

  it('never lets a completion racing a cancel resurrect the run', async () => {
    const { runId, stepId } = await newStep();
    const lease = randomUUID();
    await store.markStepRunning(stepId, runId, 0, lease, 'w1');
    const [cancel, complete] = await Promise.all([
      runs.cancelRun(runId, 'test'),
      store.markStepSucceeded(stepId, lease, 1, 'worker:w1'),
    ]);
    const run = await engine.drover.getRun(runId);
    expect(run.status).toBe('cancelled');
    if (complete) {
      // The completion won: a succeeded, its promoted dependent then cancelled.
      expect(run.steps.map((s) => s.status)).toEqual(['succeeded', 'cancelled']);
    } else {
      expect(run.steps.map((s) => s.status)).toEqual(['cancelled', 'cancelled']);
    }
    expect(cancel).not.toBeNull();
    const replay = await store.markStepSucceeded(stepId, lease, 2, 'worker:w1');
    // A replay of the completion that won answers its first outcome (idempotent per lease); one that lost stays lost.
    if (complete) expect(replay).toMatchObject({ runId });
    else expect(replay).toBeNull();
    expect(await store.markAttemptFailed(stepId, lease, { name: 'Error', message: 'x' }, 'worker:w1', 10)).toBe(false);
    const after = await engine.drover.getRun(runId);
    expect(after.status).toBe('cancelled');
    expect(after.steps.map((s) => s.status)).toEqual(run.steps.map((s) => s.status));
  });

  it('makes a duplicate enqueue harmless', async () => {
    const { runId, stepId } = await newStep();
    const dispatcher = new Dispatcher(engine.backend, silentLogger);
    const ready = { id: stepId, runId, workflow: 'one', name: 'a', processor: 'p', queue: 'default', generation: 0, attempt: 0, maxAttempts: 3,
      options: { backoff: { type: 'fixed' as const, delayMs: 0 }, delayMs: 0, timeoutMs: null, priority: 0 }, runPriority: 0 };
    await dispatcher.enqueue([ready]);
    await dispatcher.enqueue([ready, ready]);
    const counts = await engine.backend.queue('default').getJobCounts('waiting');
    expect(counts.waiting).toBe(1);
  });
});
