import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createEngine, eventually, reconcilerFor, sleep, type EngineHarness } from './helpers/engine';
import { describeEachBackend } from './helpers/env';
import { Calls } from './helpers/fixtures';

/** Issue 20, item 1: job data is not trusted; a job that does not match its step runs nothing. */
describeEachBackend('jobs checked before they run', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const rejected = async (reason: string): Promise<number> => {
    const metric = await engine.drover.metrics.jobsRejected.get();
    return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  };
  const stepOf = async (runId: string) => (await engine.sql.query(`SELECT * FROM drover.steps WHERE run_id = $1`, [runId]))[0];
  const events = async (runId: string, type: string): Promise<number> =>
    (await engine.sql.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE run_id = $1 AND type = $2`, [runId, type]))[0].n;
  /** A pino logger whose lines the test reads. */
  const capture = () => {
    const lines: string[] = [];
    const stream = new Writable({ write(chunk, _enc, done) { lines.push(...String(chunk).split('\n').filter(Boolean)); done(); } });
    return { lines, logger: pino({ level: 'warn' }, stream) };
  };

  it('a forged job with another id for a delayed step does not start it early (one warning, a metric)', async () => {
    const calls = new Calls();
    const wf = { name: 'later', steps: [{ name: 'a', processor: 'rec' }] };
    const { lines, logger } = capture();
    await engine.startWorker({ workflows: [wf], processors: { rec: async (ctx) => { calls.record(ctx.step.name); return null; } }, logger });
    const run = await engine.drover.createRun({ workflow: 'later', delayMs: 60_000 });
    const step = await stepOf(run.id);
    await engine.backend.queue('default').add('later/a', { stepId: step.id, runId: run.id, generation: 0, processor: 'rec' }, { jobId: 'forged-1' });
    await eventually(async () => (await rejected('job_id_mismatch')) === 1, 10_000, 'the forged job to be rejected');
    await sleep(200);
    expect(calls.total()).toBe(0);
    expect(await stepOf(run.id)).toMatchObject({ status: 'queued', attempt: 0 });
    expect(await events(run.id, 'step.started')).toBe(0);
    expect((await engine.drover.getRun(run.id)).status).toBe('pending');
    expect(await engine.backend.queue('default').getJobState(`${step.id}-g0`)).toBe('delayed');
    // Logged once, at warn, with the job id and the reason, and none of the job's data.
    const warnings = lines.filter((l) => l.includes('job rejected'));
    expect(warnings).toHaveLength(1);
    expect(JSON.parse(warnings[0])).toMatchObject({ level: 40, jobId: 'forged-1', reason: 'job_id_mismatch' });
    expect(warnings[0]).not.toContain(step.id);
    expect(warnings[0]).not.toContain(run.id);
  });

  it('three forged jobs for a running step take nothing over: the attempt finishes normally', async () => {
    const calls = new Calls();
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const wf = { name: 'busy', steps: [{ name: 'a', processor: 'hold', attempts: 3 }] };
    await engine.startWorker({
      workflows: [wf], concurrency: 5,
      processors: { hold: async (ctx) => { calls.record(ctx.step.name); await released; return { attempt: ctx.step.attempt }; } },
    });
    const run = await engine.drover.createRun({ workflow: 'busy' });
    await eventually(async () => (await stepOf(run.id)).status === 'running', 10_000, 'the step to run');
    const step = await stepOf(run.id);
    const queue = engine.backend.queue('default');
    for (const jobId of ['forged-a', 'forged-b', 'forged-c']) {
      await queue.add('busy/a', { stepId: step.id, runId: run.id, generation: 0, processor: 'hold' }, { jobId });
    }
    await eventually(async () => (await rejected('job_id_mismatch')) === 3, 10_000, 'the three forged jobs to be rejected');
    expect(await stepOf(run.id)).toMatchObject({ status: 'running', attempt: 1, lease: step.lease });
    release();
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 });
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ a: { attempt: 1 } });
    expect(calls.total()).toBe(1);
    expect(await stepOf(run.id)).toMatchObject({ attempt: 1 });
    expect(await events(run.id, 'step.started')).toBe(1);
    expect(await events(run.id, 'step.failed')).toBe(0);
    expect(await events(run.id, 'step.attempt_failed')).toBe(0);
  });

  it("a job that names run Y's step but claims run X runs nothing", async () => {
    const calls = new Calls();
    const x = { name: 'x', steps: [{ name: 'a', processor: 'rec' }] };
    // Y's step sits on a queue no worker here consumes, so its own job stays put.
    const y = { name: 'y', steps: [{ name: 'b', processor: 'rec', queue: 'parked' }] };
    await engine.startWorker({ workflows: [x, y], queues: ['default'], processors: { rec: async (ctx) => { calls.record(ctx.step.name); return null; } } });
    const runX = await engine.drover.createRun({ workflow: 'x', delayMs: 60_000 });
    const runY = await engine.drover.createRun({ workflow: 'y' });
    const stepY = await stepOf(runY.id);
    // The job id is Y's step's own; only the run it claims is wrong.
    await engine.backend.queue('default').add('x/a', { stepId: stepY.id, runId: runX.id, generation: 0, processor: 'rec' }, { jobId: `${stepY.id}-g0` });
    await eventually(async () => (await rejected('run_mismatch')) === 1, 10_000, 'the retargeted job to be rejected');
    await sleep(200);
    expect(calls.total()).toBe(0);
    expect(await stepOf(runY.id)).toMatchObject({ status: 'queued', attempt: 0 });
    expect(await stepOf(runX.id)).toMatchObject({ status: 'queued', attempt: 0 });
    expect(await events(runX.id, 'step.started')).toBe(0);
    expect(await events(runY.id, 'step.started')).toBe(0);
  });

  it('rejects a job that names another processor than its step has: nothing runs, no attempt', async () => {
    const calls = new Calls();
    const wf = { name: 'pair', steps: [{ name: 'a', processor: 'safe', queue: 'parked' }] };
    await engine.startWorker({ workflows: [wf], queues: ['default'], processors: { safe: async () => null, risky: async () => { calls.record('risky'); return null; } } });
    const run = await engine.drover.createRun({ workflow: 'pair' });
    const step = await stepOf(run.id);
    await engine.backend.queue('default').add('pair/a', { stepId: step.id, runId: run.id, generation: 0, processor: 'risky' }, { jobId: `${step.id}-g0` });
    await eventually(async () => (await rejected('processor_mismatch')) === 1, 10_000, 'the job to be rejected');
    expect(calls.total()).toBe(0);
    expect(await stepOf(run.id)).toMatchObject({ status: 'queued', attempt: 0 });
  });

  it('rejects malformed data and unknown steps, and still runs jobs enqueued by the previous version', async () => {
    const calls = new Calls();
    const wf = { name: 'old', steps: [{ name: 'a', processor: 'rec' }] };
    await engine.drover.registerWorkflows([wf]);
    const run = await engine.drover.createRun({ workflow: 'old' });
    const step = await stepOf(run.id);
    const queue = engine.backend.queue('default');
    // The previous version's job: named after the processor, data without names.
    await queue.remove(`${step.id}-g0`);
    await queue.add('rec', { stepId: step.id, runId: run.id, generation: 0 } as never, { jobId: `${step.id}-g0` });
    const ghost = randomUUID();
    await queue.add('ghost', { stepId: ghost, runId: randomUUID(), generation: 0, processor: 'rec' }, { jobId: `${ghost}-g0` });
    await queue.add('junk', { stepId: 'not-a-uuid', runId: run.id, generation: 0 } as never, { jobId: 'junk-1' });
    await engine.startWorker({ workflows: [wf], processors: { rec: async (ctx) => { calls.record(ctx.step.name); return 'ran'; } } });
    expect((await engine.drover.waitForRun(run.id, { timeoutMs: 10_000 })).status).toBe('succeeded');
    await eventually(async () => (await rejected('unknown_step')) === 1 && (await rejected('malformed')) === 1, 10_000, 'both rejections');
    expect(calls.total()).toBe(1);
  });

  it('the reconciler removes waiting jobs whose data names no step, and its pass does not fail on them', async () => {
    const queue = engine.backend.queue('default');
    await queue.add('junk', { stepId: 'not-a-uuid', runId: 'x', generation: 0 } as never, { jobId: 'junk-2', delay: 60_000 });
    await queue.add('empty', {} as never, { jobId: 'junk-3' });
    const report = await reconcilerFor(engine).reconcile();
    expect(report).toMatchObject({ ran: true, jobsRemoved: 2 });
    expect(await queue.getJob('junk-2')).toBeFalsy();
    expect(await queue.getJob('junk-3')).toBeFalsy();
  });
});
