import { DroverError } from '../src/errors';
import { STATUS_OF_CODE } from '../src/http/errors';
import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';

describeEachBackend('bad input', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  async function rejection(request: unknown): Promise<DroverError> {
    try {
      await engine.drover.createRun(request as never);
    } catch (error) {
      expect(error).toBeInstanceOf(DroverError);
      expect(error).not.toHaveProperty('status'); // a domain error: only http/ knows statuses
      return error as DroverError;
    }
    throw new Error('expected a DroverError');
  }

  async function counts() {
    const [row] = await engine.sql.query(`SELECT (SELECT count(*) FROM drover.runs)::int AS runs,
      (SELECT count(*) FROM drover.steps)::int AS steps, (SELECT count(*) FROM drover.audit_events)::int AS audit`);
    return row;
  }

  it('answers each bad request with a clear error and leaves nothing behind', async () => {
    await engine.drover.registerWorkflows([{ name: 'ok', steps: [{ name: 'a', processor: 'p' }] }]);
    const before = await counts();
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 5000; i++) deep = { d: deep };
    const cases: Array<[unknown, number, string, string]> = [
      [{ workflow: 'nope' }, 422, 'unknown_workflow', 'unknown workflow "nope"'],
      [{ workflow: 'ok', input: [1, 2] }, 400, 'invalid_request', 'input: must be a JSON object'],
      [{ workflow: 'ok', input: 'text' }, 400, 'invalid_request', 'input: must be a JSON object'],
      [{ workflow: 'ok', input: { big: 'x'.repeat(1024 * 1024 + 1) } }, 413, 'payload_too_large', 'input is 1048587 bytes; the limit is 1048576'],
      [{ workflow: 'ok', input: { s: 'nul\u0000byte' } }, 400, 'invalid_request', 'input.s contains a NUL character'],
      [{ workflow: 'ok', input: { s: 'lone \ud800 surrogate' } }, 400, 'invalid_request', 'unpaired UTF-16 surrogate'],
      [{ workflow: 'ok', priority: -1 }, 400, 'invalid_request', 'priority:'],
      [{ workflow: 'ok', delayMs: 'soon' }, 400, 'invalid_request', 'delayMs:'],
      [{ workflow: 'ok', extra: true }, 400, 'invalid_request', 'Unrecognized key'],
      [{}, 400, 'invalid_request', 'workflow:'],
      [{ workflow: 'ok', workspace: '../etc' }, 400, 'invalid_request', 'workspace:'],
      [{ workflow: 'ok', input: deep }, 400, 'invalid_request', 'is nested deeper than 64 levels'],
    ];
    for (const [request, status, code, message] of cases) {
      const error = await rejection(request);
      expect({ status: STATUS_OF_CODE[error.code], code: error.code }).toEqual({ status, code });
      expect(error.message).toContain(message);
    }
    expect(await counts()).toEqual(before);
  });

  it('fails a step whose processor returns a value that is not JSON', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const wf = (name: string) => ({ name, steps: [{ name: 'a', processor: name, attempts: 3 }] });
    await engine.startWorker({
      workflows: [wf('fn'), wf('big'), wf('cycle')],
      processors: { fn: async () => ({ f: () => 1 }), big: async () => ({ n: 10n }), cycle: async () => circular },
    });
    const expected: Record<string, string> = { fn: 'output.f is a function', big: 'output.n is a BigInt', cycle: 'output.self is a circular reference' };
    for (const name of Object.keys(expected)) {
      const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: name })).id);
      expect(run.status).toBe('failed');
      expect(run.steps[0].attempts).toBe(1);
      expect(run.steps[0].error).toMatchObject({ name: 'NonRetryableError' });
      expect((run.steps[0].error as { message: string }).message).toContain(expected[name]);
    }
  });

  it('stores ctx.log lines as step logs in Postgres (not in the audit trail) and in the BullMQ job log', async () => {
    await engine.startWorker({
      workflows: [{ name: 'logs', steps: [{ name: 'a', processor: 'talk' }] }],
      processors: { talk: async (ctx) => { ctx.log('hello'); ctx.log('world'); ctx.progress(50); return 1; } },
    });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'logs' })).id);
    const audit = (await engine.drover.getAudit(run.id)).items;
    expect(audit.filter((e) => e.type === 'step.log')).toEqual([]);
    const lines = (await engine.drover.getStepLogs(run.id, 'a')).items;
    expect(lines.map((l) => [l.attempt, l.message])).toEqual([[1, 'hello'], [1, 'world']]);
    // Written before the success was recorded.
    const succeededAt = audit.find((e) => e.type === 'step.succeeded')!.at;
    expect(lines.every((l) => l.at <= succeededAt)).toBe(true);
    const jobId = `${run.steps[0].id}-g0`;
    const logs = await engine.backend.queue('default').getJobLogs(jobId);
    expect(logs.logs).toEqual(['hello', 'world']);
  });
});
