import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { attemptStarts, Calls, fatal, flaky, sleep } from './helpers/fixtures';

describeEachBackend('step retries', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const single = (name: string, processor: string, extra: Record<string, unknown> = {}) =>
    ({ name, steps: [{ name: 'only', processor, ...extra }] });

  it('retries with exponential backoff until the processor succeeds', async () => {
    const calls = new Calls();
    const started: number[] = [];
    const flakyTwice = flaky(2, calls);
    await engine.startWorker({
      workflows: [single('flaky', 'flaky', { attempts: 3, backoff: { type: 'exponential', delayMs: 100 } })],
      processors: { flaky: async (ctx) => { started.push(Date.now()); return flakyTwice(ctx); } },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'flaky' })).id);
    expect(run.status).toBe('succeeded');
    // The earlier attempts' errors are history (in the audit trail below), not the succeeded step's error.
    expect(run.steps[0]).toMatchObject({ status: 'succeeded', attempts: 3, output: { attempt: 3 }, error: null });
    expect(run.output).toEqual({ only: { attempt: 3 } });
    expect(calls.get('only')).toBe(3);
    // exponential: ~100 ms then ~200 ms between attempts
    expect(started[1] - started[0]).toBeGreaterThanOrEqual(90);
    expect(started[2] - started[1]).toBeGreaterThanOrEqual(190);
    const audit = (await engine.drover.getAudit(run.id)).items;
    const failed = audit.filter((e) => e.type === 'step.attempt_failed');
    expect(failed.map((e) => (e.data as any).attempt)).toEqual([1, 2]);
    expect((failed[0].data as any).error.message).toBe('flaky failure 1');
    expect(attemptStarts(audit).map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(audit.filter((e) => e.type === 'step.succeeded')).toHaveLength(1);
  });

  it('fails a step on its first attempt with NonRetryableError', async () => {
    await engine.startWorker({ workflows: [single('fatal', 'fatal', { attempts: 5 })], processors: { fatal } });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'fatal' })).id);
    expect(run.status).toBe('failed');
    expect(run.steps[0]).toMatchObject({ status: 'failed', attempts: 1, error: { name: 'NonRetryableError', message: 'fatal failure', retryable: false } });
    expect(run.error).toEqual({ message: 'failed steps: only', failedSteps: ['only'], step: 'only', code: 'non_retryable' });
    expect(run.output).toBeNull();
  });

  it('treats any error with retryable === false as final', async () => {
    const calls = new Calls();
    await engine.startWorker({
      workflows: [single('plain', 'plain')],
      processors: { plain: async (ctx) => { calls.record(ctx.step.name); throw Object.assign(new Error('no use trying'), { retryable: false }); } },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'plain' })).id);
    expect(run.status).toBe('failed');
    expect(calls.get('only')).toBe(1);
    expect(run.steps[0].error).toMatchObject({ message: 'no use trying', retryable: false });
  });

  it('times an attempt out, aborts its signal and retries it', async () => {
    const aborts: string[] = [];
    await engine.startWorker({
      workflows: [single('slow', 'slow', { timeoutMs: 200, attempts: 2, backoff: { type: 'fixed', delayMs: 10 } })],
      processors: {
        slow: async (ctx) => {
          ctx.signal.addEventListener('abort', () => aborts.push((ctx.signal.reason as Error).name));
          await sleep(5000);
          return 'never';
        },
      },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'slow' })).id, { timeoutMs: 10_000 });
    expect(run.status).toBe('failed');
    expect(run.steps[0]).toMatchObject({ status: 'failed', attempts: 2, error: { name: 'StepTimeoutError', code: 'step_timeout' } });
    expect(aborts).toEqual(['StepTimeoutError', 'StepTimeoutError']);
  });
});
