import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, reconcilerFor, sleep, type EngineHarness } from './helpers/engine';
import { maxOverlap, runIntervals, stepIntervals } from './helpers/flow';
import type { WorkflowDefinition } from '../src/types';

const pause = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

describeEachBackend('concurrency keys', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('keeps at most `limit` steps of a key running across workers, and every run finishes', async () => {
    const wf: WorkflowDefinition = {
      name: 'per-tenant',
      steps: [
        { name: 'prepare', processor: 'quick' },
        { name: 'call', processor: 'slow', dependsOn: ['prepare'], concurrency: { key: 'input.tenant', limit: 2 } },
      ],
    };
    const processors = { quick: async () => null, slow: async (ctx: any) => { await pause(40, ctx.signal); return null; } };
    await engine.startWorker({ workflows: [wf], processors, concurrency: 10 });
    await engine.startWorker({ workflows: [wf], processors, concurrency: 10 });
    const tenants = ['a', 'b', 'c', 'd', 'e'];
    const { items } = await engine.drover.createRuns(Array.from({ length: 60 }, (_, i) => ({ workflow: 'per-tenant', input: { tenant: tenants[i % 5] } })));
    for (const item of items) expect((await engine.drover.waitForRun(item.id!, { timeoutMs: 60_000 })).status).toBe('succeeded');
    const overlap = maxOverlap(await stepIntervals(engine.sql, 'per-tenant', 'call', (input) => input.tenant));
    expect([...overlap.keys()].sort()).toEqual(tenants);
    for (const [, max] of overlap) expect(max).toBeLessThanOrEqual(2);
    // Twenty workers' slots: each key did use both of its places.
    expect(Math.max(...overlap.values())).toBe(2);
    const [{ n }] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.flow_entries e WHERE drover.flow_entry_open(e.kind, e.subject, e.generation)`);
    expect(n).toBe(0);
  }, 90_000);

  it('queues runs of a key in order (strategy queue) and says why a run waits', async () => {
    const wf: WorkflowDefinition = { name: 'one-at-a-time', concurrency: { key: 'input.account', limit: 1 }, steps: [{ name: 'work', processor: 'slow' }] };
    let release = false; // the first run holds its place until the test has seen the second one wait
    await engine.startWorker({ workflows: [wf], processors: { slow: async (ctx: any) => {
      while (ctx.input.hold && !release && !ctx.signal.aborted) await sleep(20);
      await pause(Number(ctx.input.ms), ctx.signal);
      return null;
    } }, concurrency: 10 });
    const first = await engine.drover.createRun({ workflow: 'one-at-a-time', input: { account: 'x', ms: 10, hold: true } });
    const second = await engine.drover.createRun({ workflow: 'one-at-a-time', input: { account: 'x', ms: 10 } });
    const other = await engine.drover.createRun({ workflow: 'one-at-a-time', input: { account: 'y', ms: 10 } });
    // Another key's run does not wait behind x's.
    expect((await engine.drover.waitForRun(other.id, { timeoutMs: 10_000 })).status).toBe('succeeded');
    const waiting = await engine.drover.getRun(second.id);
    expect(waiting.status).toBe('pending');
    expect(waiting.steps[0]).toMatchObject({ status: 'queued', waitingFor: 'concurrency key account=x (1/1 runs running)' });
    release = true;
    expect((await engine.drover.waitForRun(second.id, { timeoutMs: 20_000 })).status).toBe('succeeded');
    const [a, b] = [await engine.drover.getRun(first.id), await engine.drover.getRun(second.id)];
    expect(Date.parse(b.startedAt!)).toBeGreaterThanOrEqual(Date.parse(a.finishedAt!));
    const events = (await engine.drover.getAudit(second.id)).items.map((e) => e.type);
    expect(events).toEqual(expect.arrayContaining(['flow.waiting', 'flow.admitted']));
    expect(events.indexOf('flow.admitted')).toBeLessThan(events.indexOf('run.started'));
  }, 60_000);

  it('cancel_newest cancels a new run over the limit at once, with the reason in its audit trail', async () => {
    const wf: WorkflowDefinition = { name: 'newest', concurrency: { key: 'input.k', limit: 1, strategy: 'cancel_newest' }, steps: [{ name: 'work', processor: 'slow' }] };
    await engine.startWorker({ workflows: [wf], processors: { slow: async (ctx: any) => { await pause(1500, ctx.signal); return 'done'; } } });
    const first = await engine.drover.createRun({ workflow: 'newest', input: { k: 1 } });
    const second = await engine.drover.createRun({ workflow: 'newest', input: { k: 1 } });
    const cancelled = await engine.drover.getRun(second.id);
    expect(cancelled.status).toBe('cancelled');
    const event = (await engine.drover.getAudit(second.id)).items.find((e) => e.type === 'run.cancelled');
    expect(event).toMatchObject({ actor: 'flow', data: { reason: 'concurrency limit', strategy: 'cancel_newest', key: 'k=1', limit: 1 } });
    expect((await engine.drover.waitForRun(first.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
    expect(cancelled.steps[0].startedAt).toBeNull();
  }, 30_000);

  it('cancel_in_progress cancels the oldest running run and starts the new one', async () => {
    const wf: WorkflowDefinition = { name: 'latest', concurrency: { key: 'input.k', limit: 1, strategy: 'cancel_in_progress' }, steps: [{ name: 'work', processor: 'slow' }] };
    let aborted = 0;
    await engine.startWorker({ workflows: [wf], processors: { slow: async (ctx: any) => { await pause(Number(ctx.input.ms), ctx.signal); if (ctx.signal.aborted) aborted++; return 'done'; } } });
    const old = await engine.drover.createRun({ workflow: 'latest', input: { k: 'same', ms: 20_000 } });
    await eventually(async () => (await engine.drover.getRun(old.id)).status === 'running', 10_000, 'the old run running');
    const fresh = await engine.drover.createRun({ workflow: 'latest', input: { k: 'same', ms: 10 } });
    const freshRun = await engine.drover.waitForRun(fresh.id, { timeoutMs: 15_000 });
    expect(freshRun.status).toBe('succeeded');
    const oldRun = await engine.drover.waitForRun(old.id, { timeoutMs: 5_000 });
    expect(oldRun.status).toBe('cancelled');
    // The limit holds for runs: the old one is cancelled no later than the new one starts (its processor may still be unwinding).
    expect(Date.parse(oldRun.finishedAt!)).toBeLessThanOrEqual(Date.parse(freshRun.startedAt!));
    const event = (await engine.drover.getAudit(old.id)).items.find((e) => e.type === 'run.cancelled');
    expect(event).toMatchObject({ actor: 'flow', data: { reason: 'concurrency limit', strategy: 'cancel_in_progress', key: 'k=same', replacedBy: fresh.id } });
    await eventually(() => aborted === 1, 5_000, 'the old run\'s processor to see its signal abort');
  }, 40_000);

  it('serves keys fairly: a key with 1,000 waiting runs delays another key\'s run by a few starts at most', async () => {
    const wf: WorkflowDefinition = { name: 'fair', concurrency: { key: 'input.tenant', limit: 2 }, steps: [{ name: 'work', processor: 'quick' }] };
    const order: string[] = [];
    await engine.drover.registerWorkflows([wf]);
    const big = Array.from({ length: 1000 }, () => ({ workflow: 'fair', input: { tenant: 'big' } }));
    await engine.drover.createRuns(big);
    await engine.startWorker({ workflows: [wf], processors: { quick: async (ctx: any) => { order.push(ctx.input.tenant); await sleep(5); return null; } }, concurrency: 4 });
    await eventually(() => order.length >= 20, 30_000, 'twenty starts of the big key');
    // Counted before the run is created: the worker in this process may start it before createRun's promise resumes us.
    const before = order.length;
    const small = await engine.drover.createRun({ workflow: 'fair', input: { tenant: 'small' } });
    expect((await engine.drover.waitForRun(small.id, { timeoutMs: 20_000 })).status).toBe('succeeded');
    const position = order.indexOf('small') - before;
    // At most the big key's two places (and the ones admitted as the small run was created) go first.
    expect(position).toBeGreaterThanOrEqual(0);
    expect(position).toBeLessThanOrEqual(4);
    const [{ waiting }] = await engine.sql.query(`SELECT count(*)::int AS waiting FROM drover.flow_entries WHERE state = 'waiting'`);
    expect(waiting).toBeGreaterThan(500); // the big key's backlog was still there
  }, 90_000);

  it('the reconciler promotes waiters whose places were freed without a promotion (a crash after the commit)', async () => {
    const wf: WorkflowDefinition = { name: 'lost-promotion', concurrency: { key: 'input.k', limit: 1 }, steps: [{ name: 'work', processor: 'quick' }] };
    await engine.drover.registerWorkflows([wf]);
    const a = await engine.drover.createRun({ workflow: 'lost-promotion', input: { k: 1 } });
    const b = await engine.drover.createRun({ workflow: 'lost-promotion', input: { k: 1 } });
    expect((await engine.drover.getRun(b.id)).steps[0].waitingFor).toMatch(/^concurrency key k=1/);
    // a's place is freed by a transition no promotion followed (as if its worker died right after the commit).
    await engine.sql.query(`UPDATE drover.runs SET status = 'cancelled', open_steps = 0, finished_at = now() WHERE id = $1`, [a.id]);
    await engine.sql.query(`UPDATE drover.steps SET status = 'cancelled', finished_at = now() WHERE run_id = $1`, [a.id]);
    await engine.startWorker({ workflows: [wf], processors: { quick: async () => 'ok' } });
    await sleep(500);
    expect((await engine.drover.getRun(b.id)).status).toBe('pending');
    const report = await reconcilerFor(engine).reconcile();
    expect(report.flowPromoted).toBe(1);
    expect((await engine.drover.waitForRun(b.id, { timeoutMs: 10_000 })).status).toBe('succeeded');
  }, 30_000);

  it('a resumed run asks for its place again (it does not run beside the key\'s holder)', async () => {
    const wf: WorkflowDefinition = { name: 'resumable', concurrency: { key: 'input.k', limit: 1 }, steps: [{ name: 'work', processor: 'maybe', attempts: 1 }] };
    let fail = true;
    let release = false; // b holds its place until the test has seen a wait
    await engine.startWorker({ workflows: [wf], processors: { maybe: async (ctx: any) => {
      if (ctx.input.first && fail) throw new Error('first try fails');
      while (ctx.input.hold && !release && !ctx.signal.aborted) await sleep(20);
      return null;
    } } });
    const a = await engine.drover.createRun({ workflow: 'resumable', input: { k: 1, first: true } });
    expect((await engine.drover.waitForRun(a.id, { timeoutMs: 10_000 })).status).toBe('failed');
    const b = await engine.drover.createRun({ workflow: 'resumable', input: { k: 1, hold: true } });
    await eventually(async () => (await engine.drover.getRun(b.id)).status === 'running', 10_000, 'b running');
    fail = false;
    await engine.drover.retryRun(a.id);
    const resumed = await engine.drover.getRun(a.id);
    expect(resumed.steps[0]).toMatchObject({ status: 'queued', waitingFor: 'concurrency key k=1 (1/1 runs running)' });
    release = true;
    expect((await engine.drover.waitForRun(a.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
    // a's second attempt started only once b had finished.
    const starts = (await engine.drover.getAudit(a.id)).items.filter((e) => e.type === 'step.started');
    expect(starts).toHaveLength(2);
    const bDone = await engine.drover.getRun(b.id);
    expect(bDone.status).toBe('succeeded');
    expect(Date.parse(starts[1].at)).toBeGreaterThanOrEqual(Date.parse(bDone.finishedAt!));
  }, 40_000);

  it('a step of a waiting run does not take a step place (no cycle between a run key and a step key)', async () => {
    const wf: WorkflowDefinition = {
      name: 'nested-keys', concurrency: { key: 'input.k', limit: 1 },
      steps: [
        { name: 'a', processor: 'slow', concurrency: { key: 'shared', limit: 1 } },
        { name: 'b', processor: 'slow', dependsOn: ['a'], concurrency: { key: 'shared', limit: 1 } },
      ],
    };
    await engine.startWorker({ workflows: [wf], processors: { slow: async (ctx: any) => { await pause(400, ctx.signal); return null; } } });
    const x = await engine.drover.createRun({ workflow: 'nested-keys', input: { k: 1 } });
    await eventually(async () => (await engine.drover.getRun(x.id)).status === 'running', 10_000, 'x running');
    const y = await engine.drover.createRun({ workflow: 'nested-keys', input: { k: 1 } });
    // y waits on the run key; its step a must not hold "shared", or x's step b would wait on it for ever.
    expect((await engine.drover.waitForRun(x.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
    expect((await engine.drover.waitForRun(y.id, { timeoutMs: 15_000 })).status).toBe('succeeded');
  }, 40_000);
});
