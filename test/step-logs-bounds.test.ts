import { ApiKeyStore } from '../src/auth/api-keys';
import { startServer, type DroverServer } from '../src/http/server';
import { MAX_LOG_LINE_CHARS, MAX_LOG_LINES_PER_ATTEMPT, MAX_LOG_PAGE } from '../src/steps/step-logs';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend } from './helpers/env';
import { http } from './helpers/server-process';

describeEachBackend('step logs and output bounds', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  let auth: Record<string, string>;
  let calls: Record<string, number>;
  const api = (path: string) => http(`${server.url}${path}`, { headers: auth });

  beforeEach(async () => {
    calls = {};
    engine = await createEngine(backend);
    await engine.startWorker({
      maxOutputBytes: 1000,
      workflows: [
        { name: 'talk', steps: [{ name: 'chat', processor: 'chat' }] },
        { name: 'big', steps: [{ name: 'huge', processor: 'huge', attempts: 3, backoff: { type: 'fixed', delayMs: 10 } }] },
        { name: 'fits', steps: [{ name: 'edge', processor: 'edge' }, { name: 'sink', processor: 'edge', dependsOn: ['edge'] }] },
        { name: 'chatty', steps: [{ name: 'flood', processor: 'flood' }] },
      ],
      processors: {
        chat: async (ctx) => { for (let i = 0; i < 250; i++) ctx.log(`line ${i}`); return { said: 250 }; },
        huge: async () => { calls.huge = (calls.huge ?? 0) + 1; return { blob: 'x'.repeat(2000) }; },
        // 1000 bytes exactly: {"s":"…"} is 8 bytes of punctuation and key.
        edge: async () => ({ s: 'y'.repeat(992) }),
        flood: async (ctx) => {
          ctx.log(`z\u0000${'z'.repeat(MAX_LOG_LINE_CHARS + 100)}`); // a NUL (Postgres text refuses it) and too long
          for (let i = 1; i < MAX_LOG_LINES_PER_ATTEMPT + 50; i++) ctx.log(`line ${i}`);
          return null;
        },
      },
    });
    auth = { authorization: `Bearer ${(await new ApiKeyStore(engine.sql).create('logs', { scope: 'read' })).key}` };
    server = await startServer({ drover: engine.drover, port: 0 });
  });
  afterEach(async () => {
    await server.close();
    await engine.close();
  });

  it('serves ctx.log lines at GET /api/runs/:id/steps/:name/logs, paged and bounded, apart from the audit trail', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'talk' })).id);
    expect(run.status).toBe('succeeded');
    const first = await api(`/api/runs/${run.id}/steps/chat/logs?limit=100`);
    expect(first.status).toBe(200);
    expect(first.body.items).toHaveLength(100);
    expect(first.body.items[0]).toEqual({ id: expect.any(String), at: expect.any(String), attempt: 1, message: 'line 0' });
    const lines: string[] = first.body.items.map((l: { message: string }) => l.message);
    let cursor = first.body.nextCursor;
    while (cursor) {
      const page = await api(`/api/runs/${run.id}/steps/chat/logs?limit=100&cursor=${cursor}`);
      expect(page.status).toBe(200);
      lines.push(...page.body.items.map((l: { message: string }) => l.message));
      cursor = page.body.nextCursor;
    }
    expect(lines).toEqual(Array.from({ length: 250 }, (_, i) => `line ${i}`));
    // The default page is 100 lines; a page is at most MAX_LOG_PAGE.
    expect((await api(`/api/runs/${run.id}/steps/chat/logs`)).body.items).toHaveLength(100);
    const tooMany = await api(`/api/runs/${run.id}/steps/chat/logs?limit=${MAX_LOG_PAGE + 1}`);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.message).toMatch(/limit must be a whole number from 1 to 1000/);
    expect((await api(`/api/runs/${run.id}/steps/chat/logs?cursor=abc`)).status).toBe(400);
    const noStep = await api(`/api/runs/${run.id}/steps/nope/logs`);
    expect(noStep.status).toBe(404);
    expect(noStep.body.error.message).toBe(`step "nope" of run ${run.id} not found`);
    expect((await api('/api/runs/00000000-0000-4000-8000-000000000000/steps/chat/logs')).status).toBe(404);
    expect((await api('/api/runs/not-a-uuid/steps/chat/logs')).status).toBe(404);
    // Not in the audit trail any more.
    const audit = (await api(`/api/runs/${run.id}/audit`)).body.items;
    expect(audit.some((e: { type: string }) => e.type === 'step.log')).toBe(false);
  });

  it('keeps at most 10,000 lines of 8 KiB per attempt, and says when it dropped the rest', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'chatty' })).id, { timeoutMs: 60_000 });
    expect(run.status).toBe('succeeded');
    const [{ n }] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.step_logs WHERE run_id = $1`, [run.id]);
    expect(n).toBe(MAX_LOG_LINES_PER_ATTEMPT + 1);
    const [first] = (await api(`/api/runs/${run.id}/steps/flood/logs?limit=1`)).body.items;
    expect(first.message).toBe('z'.repeat(MAX_LOG_LINE_CHARS - 1));
    const [last] = await engine.sql.query(`SELECT message FROM drover.step_logs WHERE run_id = $1 ORDER BY id DESC LIMIT 1`, [run.id]);
    expect(last.message).toBe(`(more than ${MAX_LOG_LINES_PER_ATTEMPT} lines: the rest of this attempt's log is dropped)`);
  }, 90_000);

  it('fails a step whose output is over DROVER_MAX_OUTPUT_BYTES at once, without retries, with a clear error', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'big' })).id);
    expect(run.status).toBe('failed');
    expect(calls.huge).toBe(1);
    const step = run.steps[0];
    expect(step.status).toBe('failed');
    expect(step.attempts).toBe(1);
    expect(step.output).toBeNull();
    expect((step.error as { message: string }).message).toBe(
      'processor "huge" returned an output of 2011 bytes of JSON, over the limit of 1000 bytes (DROVER_MAX_OUTPUT_BYTES): store large results elsewhere and return a reference');
    // An output of exactly the limit is kept.
    const ok = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'fits' })).id);
    expect(ok.status).toBe('succeeded');
    expect((ok.steps[0].output as { s: string }).s).toHaveLength(992);
  });

  it('lists runs without their outputs (GET /api/runs); one run still has its output', async () => {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'fits' })).id);
    const list = await api('/api/runs');
    expect(list.status).toBe(200);
    const item = list.body.items.find((r: { id: string }) => r.id === run.id);
    expect(item).toMatchObject({ id: run.id, status: 'succeeded', workflow: 'fits' });
    expect(item).not.toHaveProperty('output');
    expect(list.text).not.toContain('yyyy');
    const one = await api(`/api/runs/${run.id}`);
    expect(one.body.output).toEqual({ sink: { s: 'y'.repeat(992) } });
  });
});
