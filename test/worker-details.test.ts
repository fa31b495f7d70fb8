import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';

/** Rejects with the signal's reason when it aborts (and records the reason). */
const untilAborted = (signal: AbortSignal, seen: unknown[]) => new Promise<never>((_, reject) => {
  signal.addEventListener('abort', () => { seen.push(signal.reason); reject(signal.reason); }, { once: true });
});

describeEachBackend('worker details', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  const stepStatus = async (runId: string) =>
    (await engine.sql.query(`SELECT status FROM drover.steps WHERE run_id = $1`, [runId]))[0].status;

  it('keeps checking leases while it drains: a cancel during shutdown aborts the running processor', async () => {
    const reasons: unknown[] = [];
    const wf = { name: 'drain-cancel', steps: [{ name: 'a', processor: 'wait' }] };
    const worker = await engine.startWorker({ gracePeriodMs: 3000, workflows: [wf], processors: { wait: (ctx) => untilAborted(ctx.signal, reasons) } });
    const run = await engine.drover.createRun({ workflow: 'drain-cancel' });
    await eventually(async () => (await stepStatus(run.id)) === 'running', 10_000, 'a running');
    const closing = worker.close();
    await engine.drover.cancelRun(run.id);
    await closing;
    // Aborted by the lease check (the cancel), not abandoned at the end of the grace period.
    expect(reasons.map((r) => (r as { code?: string }).code)).toEqual(['lease_lost']);
    expect(await stepStatus(run.id)).toBe('cancelled');
  });

  it('counts a processor that ignores its timeout against concurrency until it returns', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    let firstReturned = false;
    const startedWhileFirstRan: boolean[] = [];
    const wf = { name: 'stubborn', steps: [{ name: 'a', processor: 'p', timeoutMs: 200, attempts: 1 }] };
    await engine.startWorker({
      concurrency: 1, workflows: [wf],
      processors: {
        p: async (ctx) => {
          if (ctx.input.first) {
            await gate; // ignores ctx.signal
            firstReturned = true;
            return 'late';
          }
          startedWhileFirstRan.push(!firstReturned);
          return 'second';
        },
      },
    });
    const first = await engine.drover.createRun({ workflow: 'stubborn', input: { first: true } });
    expect((await engine.drover.waitForRun(first.id)).status).toBe('failed'); // timed out, recorded
    const second = await engine.drover.createRun({ workflow: 'stubborn' });
    // Give a wrongly freed slot the chance to take the second job, then let the first processor return.
    await eventually(() => startedWhileFirstRan.length > 0, 1500).catch(() => undefined);
    release();
    expect((await engine.drover.waitForRun(second.id)).status).toBe('succeeded');
    expect(startedWhileFirstRan).toEqual([false]);
  });

  it('a reused worker id replaces its queue list, concurrency and version', async () => {
    const first = await engine.startWorker({ id: 'reused-id', queues: ['alpha', 'beta'], concurrency: 2 });
    await first.close();
    await engine.startWorker({ id: 'reused-id', queues: ['gamma'], concurrency: 3 });
    const row = (await engine.drover.listWorkers()).find((w) => w.id === 'reused-id');
    expect(row).toMatchObject({ queues: ['gamma'], concurrency: 3, status: 'active' });
  });
});
