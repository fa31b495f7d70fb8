import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, reconcilerFor, sleep, type EngineHarness } from './helpers/engine';
import { fatal } from './helpers/fixtures';
import type { WorkflowDefinition } from '../src/types';

const child: WorkflowDefinition = { name: 'slow-child', steps: [{ name: 'work', processor: 'hang' }] };
const parent: WorkflowDefinition = { name: 'slow-parent', steps: [{ name: 'delegate', run: { workflow: 'slow-child' } }] };
const pair: WorkflowDefinition = { name: 'pair', steps: [{ name: 'a', processor: 'ok' }, { name: 'b', processor: 'ok', dependsOn: ['a'] }] };
const alerting: WorkflowDefinition = { name: 'alerting', onFailure: 'alert', steps: [{ name: 'x', processor: 'fatal' }] };

describeEachBackend('the reconciler and waits', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const processors = {
    hang: async (ctx: any) => { while (!ctx.signal.aborted) await sleep(20); return null; },
    ok: async () => 'ok',
    fatal,
    alert: async (ctx: any) => ({ failed: ctx.failure.steps.map((s: any) => s.name) }),
  };

  it('cancels a child run whose parent finished without cancelling it (a crash after the parent\'s cancel)', async () => {
    await engine.startWorker({ workflows: [parent, child], processors });
    const run = await engine.drover.createRun({ workflow: 'slow-parent' });
    const kid: string = await eventually(async () => (await engine.drover.getRun(run.id)).children?.[0]?.id ?? '', 20_000, 'the child');
    // The parent's cancel committed, the process died before it cancelled the children.
    await engine.sql.query(`UPDATE drover.runs SET status = 'cancelled', finished_at = now(), open_steps = 0 WHERE id = $1`, [run.id]);
    await engine.sql.query(`UPDATE drover.steps SET status = 'cancelled', finished_at = now() WHERE run_id = $1`, [run.id]);
    const report = await reconcilerFor(engine).reconcile();
    expect(report.waitRepairs).toBeGreaterThanOrEqual(1);
    const after = await engine.drover.waitForRun(kid, { timeoutMs: 10_000 });
    expect(after.status).toBe('cancelled');
    expect((await engine.drover.getAudit(kid)).items.find((e) => e.type === 'run.cancelled')).toMatchObject({ actor: 'reconciler', data: { reason: 'its parent run is cancelled' } });
  });

  it('queues a pending step whose dependencies all settled but whose promotion was lost', async () => {
    await engine.drover.registerWorkflows([pair]);
    const run = await engine.drover.createRun({ workflow: 'pair' });
    // a succeeded, but b's counter was never decremented (the drift the repair is for).
    await engine.sql.query(`UPDATE drover.steps SET status = 'succeeded', output = '"ok"', finished_at = now(), created_at = now() - interval '1 minute' WHERE run_id = $1`, [run.id]);
    await engine.sql.query(`UPDATE drover.steps SET status = 'pending', output = NULL, finished_at = NULL WHERE run_id = $1 AND name = 'b'`, [run.id]);
    await engine.sql.query(`UPDATE drover.runs SET open_steps = 1, status = 'running' WHERE id = $1`, [run.id]);
    const report = await reconcilerFor(engine).reconcile();
    expect(report.waitRepairs).toBe(1);
    await engine.startWorker({ workflows: [pair], processors });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 });
    expect(done.status).toBe('succeeded');
    expect((await engine.drover.getAudit(run.id)).items.find((e) => e.type === 'step.queued' && e.stepName === 'b')).toMatchObject({ actor: 'reconciler' });
  });

  it('creates the onFailure step a crash lost after the run failed', async () => {
    await engine.drover.registerWorkflows([alerting]);
    const run = await engine.drover.createRun({ workflow: 'alerting' });
    await engine.sql.query(`UPDATE drover.steps SET status = 'failed', error = '{"message":"boom"}', finished_at = now() WHERE run_id = $1`, [run.id]);
    await engine.sql.query(`UPDATE drover.runs SET status = 'failed', open_steps = 0, failed_steps = 1, finished_at = now(), error = '{"message":"failed steps: x"}' WHERE id = $1`, [run.id]);
    const report = await reconcilerFor(engine).reconcile();
    expect(report.waitRepairs).toBe(1);
    expect((await reconcilerFor(engine).reconcile()).waitRepairs).toBe(0);
    await engine.startWorker({ workflows: [alerting], processors });
    const step = await eventually(async () => (await engine.drover.getRun(run.id)).steps.find((s) => s.name === 'onFailure' && s.status === 'succeeded'), 10_000, 'the onFailure step');
    expect(step!.output).toEqual({ failed: ['x'] });
  });
});
