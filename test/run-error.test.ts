import { ApiKeyStore } from '../src/auth/api-keys';
import { DroverError, NonRetryableError } from '../src/errors';
import { startServer, type DroverServer } from '../src/http/server';
import { RunErrorStep1766700000000 } from '../src/migrations/1766700000000-run-error-step';
import type { WorkflowDefinition } from '../src/types';
import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { sleep } from './helpers/fixtures';
import { http } from './helpers/server-process';

/** A processor's own coded error, as examples/agent-runs/budget.ts throws it. */
class BudgetExceededError extends DroverError {
  constructor() {
    super('budget_exceeded', 'budget_exceeded: workspace "w" has 0 token(s) left', { retryable: false });
  }
}

// `spend` fails first with a coded error; `later` fails after it with a plain one; `ok` succeeds.
const spending: WorkflowDefinition = {
  name: 'spending',
  steps: [
    { name: 'spend', processor: 'spend' },
    { name: 'later', processor: 'later', attempts: 1 },
    { name: 'ok', processor: 'ok' },
    { name: 'after-spend', processor: 'ok', dependsOn: ['spend'] },
  ],
};
const plain: WorkflowDefinition = { name: 'plain', steps: [{ name: 'boom', processor: 'later', attempts: 1 }] };
const child: WorkflowDefinition = { name: 'spender', steps: [{ name: 'charge', processor: 'spend' }] };
const parent: WorkflowDefinition = {
  name: 'delegating',
  onFailure: { processor: 'alert' },
  steps: [{ name: 'delegate', run: { workflow: 'spender' } }],
};

const mapped: WorkflowDefinition = {
  name: 'mapped',
  steps: [{ name: 'seed', processor: 'seed' }, { name: 'each', dependsOn: ['seed'], map: { over: 'seed.items' }, processor: 'each', attempts: 1 }],
};

describeEachBackend('a failed run\'s error', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  let key: string;
  let failures: any[];
  let fixed = false;

  beforeEach(async () => {
    engine = await createEngine(backend);
    failures = [];
    fixed = false;
    await engine.startWorker({
      workflows: [spending, plain, child, parent, mapped],
      processors: {
        spend: async () => { if (fixed) return { spent: 1 }; throw new BudgetExceededError(); },
        later: async () => { await sleep(150); if (fixed) return { late: true }; throw new Error('plain failure'); },
        ok: async () => ({ ok: true }),
        seed: async () => ({ items: [1, 2, 3] }),
        each: async (ctx: any) => { if (ctx.item === 2) throw new BudgetExceededError(); return ctx.item; },
        alert: async (ctx: any) => { failures.push(ctx.failure); return {}; },
      },
    });
    key = (await new ApiKeyStore(engine.sql).create('run-error-test', { scope: 'read' })).key;
    server = await startServer({ drover: engine.drover, port: 0 });
  });
  afterEach(async () => {
    await server.close();
    await engine.close();
  });

  it('names the first step that failed for good and its code, via getRun and GET /api/runs/:id', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'spending' })).id);
    expect(run.status).toBe('failed');
    const expected = { message: 'failed steps: later, spend', failedSteps: ['later', 'spend'], step: 'spend', code: 'budget_exceeded' };
    expect(run.error).toEqual(expected);
    expect(run.steps.find((s) => s.name === 'spend')!.error).toMatchObject({ code: 'budget_exceeded', retryable: false });
    const res = await http(`${server.url}/api/runs/${run.id}`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    expect(res.body.error).toEqual(expected);
    // The list shows it too.
    const listed = await http(`${server.url}/api/runs?workflow=spending`, { headers: { authorization: `Bearer ${key}` } });
    expect(listed.body.items[0].error).toEqual(expected);
  });

  it('has no code when the failing step\'s error has none; NonRetryableError is non_retryable', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'plain' })).id);
    expect(run.error).toEqual({ message: 'failed steps: boom', failedSteps: ['boom'], step: 'boom' });
    expect(new NonRetryableError('x').code).toBe('non_retryable');
  });

  it('a failed child run fails the parent step with the child\'s step and code; the parent run\'s error and ctx.failure name it', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'delegating' })).id, { timeoutMs: 20_000 });
    expect(run.status).toBe('failed');
    const delegate = run.steps.find((s) => s.name === 'delegate')!;
    expect(delegate.error).toMatchObject({ code: 'child_failed', childRunId: run.children![0].id, childStep: 'charge', childCode: 'budget_exceeded' });
    expect(run.error).toEqual({ message: 'failed steps: delegate', failedSteps: ['delegate'], step: 'delegate', code: 'child_failed' });
    expect((await engine.drover.getRun(run.children![0].id)).error).toMatchObject({ step: 'charge', code: 'budget_exceeded' });
    await eventually(() => failures.length === 1, 10_000, 'the onFailure step');
    expect(failures[0].error).toEqual(run.error);
  });

  it('a failed map element is the run\'s first failed step; the map step carries its code', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'mapped' })).id);
    expect(run.error).toEqual({ message: 'failed steps: each, each[1]', failedSteps: ['each', 'each[1]'], step: 'each[1]', code: 'budget_exceeded' });
    expect(run.steps.find((s) => s.name === 'each')!.error).toMatchObject({ code: 'map_element_failed', index: 1, elementCode: 'budget_exceeded' });
  });

  it('a resume clears the error; cancelling leaves none', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'spending' })).id);
    expect(run.error).toMatchObject({ step: 'spend' });
    fixed = true;
    const resumed = await engine.drover.retryRun(run.id);
    expect(resumed.error).toBeNull();
    const done = await engine.drover.waitForRun(run.id);
    expect([done.status, done.error]).toEqual(['succeeded', null]);
    const other = await engine.drover.createRun({ workflow: 'plain' });
    const cancelled = await engine.drover.cancelRun(other.id);
    expect([cancelled.status, cancelled.error]).toEqual(['cancelled', null]);
  });

  it('the migration gives runs that failed before it their step and code', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'spending' })).id);
    await engine.sql.query(`UPDATE drover.runs SET error = error - 'step' - 'code' WHERE id = $1`, [run.id]);
    expect((await engine.drover.getRun(run.id)).error).toEqual({ message: 'failed steps: later, spend', failedSteps: ['later', 'spend'] });
    await new RunErrorStep1766700000000().up({ query: (text: string) => engine.sql.query(text) } as any);
    expect((await engine.drover.getRun(run.id)).error).toEqual({ message: 'failed steps: later, spend', failedSteps: ['later', 'spend'], step: 'spend', code: 'budget_exceeded' });
  });
});
