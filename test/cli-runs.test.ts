import * as os from 'node:os';
import { NonRetryableError } from '../src/errors';
import type { ProcessorContext } from '../src/types';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { redisUrlFor } from './helpers/env';
import { echo, sleep } from './helpers/fixtures';
import { cliEnv, runCli, type CliResult } from './helpers/server-process';

const workflows = [
  { name: 'pair', steps: [{ name: 'a', processor: 'echo' }, { name: 'b', processor: 'echo', dependsOn: ['a'] }] },
  { name: 'hold', steps: [{ name: 'wait', processor: 'hold' }] },
  { name: 'breaks', steps: [{ name: 'x', processor: 'breaks' }] },
];

const ACTOR = `cli:${os.userInfo().username}`;

/** Exit code `code`, exactly one line on stderr matching `pattern`, no stack trace. */
function expectOneLine(result: CliResult, code: number, pattern: RegExp): void {
  expect([result.code, result.stderr.trim().split('\n')]).toEqual([code, [expect.stringMatching(pattern)]]);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

// The operator's commands, run as a user runs them: the compiled CLI against the harness's database
// (the CLI reads and acts on Postgres directly, as `runs create` always did), with a worker running.
describe('drover runs / workflows / workers (operator commands)', () => {
  // Each command is a process of its own (about 0.5 s, several seconds on a loaded machine).
  jest.setTimeout(180_000);
  let engine: EngineHarness;
  let env: NodeJS.ProcessEnv;
  let fix = false;
  const cli = (...args: string[]) => runCli(args, env);
  const cliJson = async (...args: string[]) => {
    const result = await cli(...args, '--json');
    expect([args.join(' '), result.code, result.stderr]).toEqual([args.join(' '), 0, '']);
    return JSON.parse(result.stdout);
  };

  beforeAll(async () => {
    engine = await createEngine('redis');
    await engine.startWorker({
      workflows,
      processors: {
        echo: echo(),
        hold: async (ctx: ProcessorContext) => { await sleep(30_000, ctx.signal); return {}; },
        breaks: async () => { if (!fix) throw new NonRetryableError('broken on purpose'); return { fixed: true }; },
      },
    });
    env = cliEnv({ DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor('redis'), DROVER_NAMESPACE: engine.namespace });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('runs create says whether it created the run or found it by idempotency key', async () => {
    const first = await cli('runs', 'create', 'pair', '--input', '{"n":1}', '--idempotency-key', 'op-1');
    expect(first.code).toBe(0);
    expect(first.stdout.trim()).toMatch(/^created run [0-9a-f-]{36} \(workflow pair, status pending\)$/);
    const again = await cli('runs', 'create', 'pair', '--idempotency-key', 'op-1');
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toMatch(/^found existing run for idempotency key "op-1": [0-9a-f-]{36} .*; nothing created$/);
    expect(first.stdout.match(/[0-9a-f-]{36}/)![0]).toBe(again.stdout.match(/[0-9a-f-]{36}/)![0]);
    const json = await cliJson('runs', 'create', 'pair', '--idempotency-key', 'op-1');
    expect(json).toMatchObject({ workflow: 'pair', idempotencyKey: 'op-1', created: false });
    expect((await engine.drover.getAudit(json.id)).items[0]).toMatchObject({ type: 'run.created', actor: ACTOR });
  });

  it('runs wait exits 0 when the run succeeds, 1 when it fails, 124 when the wait times out, saying which', async () => {
    const ok = await cliJson('runs', 'create', 'pair');
    const waited = await cli('runs', 'wait', ok.id, '--timeout-ms', '20000');
    expect([waited.code, waited.stdout.trim()]).toEqual([0, `succeeded: run ${ok.id} (workflow pair, status succeeded)`]);
    expect((await cliJson('runs', 'wait', ok.id)).status).toBe('succeeded');

    const broken = await cliJson('runs', 'create', 'breaks');
    expectOneLine(await cli('runs', 'wait', broken.id), 1, new RegExp(`^drover: run ${broken.id} failed: failed steps: x$`));

    const held = await cliJson('runs', 'create', 'hold');
    const timedOut = await cli('runs', 'wait', held.id, '--timeout-ms', '300');
    expectOneLine(timedOut, 124, new RegExp(`^drover: run ${held.id} is still (pending|running) after 300 ms: the wait timed out$`));
    await cli('runs', 'cancel', held.id);
    expectOneLine(await cli('runs', 'wait', held.id), 1, new RegExp(`^drover: run ${held.id} was cancelled$`));
  });

  it('runs cancel and runs resume act on the run, audited as the CLI user; a wrong state is one line and exit 1', async () => {
    const held = await cliJson('runs', 'create', 'hold');
    await eventually(async () => (await engine.drover.getRun(held.id)).steps[0].status === 'running', 20_000, 'the hold step to start');
    const cancelled = await cli('runs', 'cancel', held.id);
    expect([cancelled.code, cancelled.stdout.trim()]).toEqual([0, `cancelled run ${held.id} (workflow hold, status cancelled)`]);
    expectOneLine(await cli('runs', 'cancel', held.id), 1, /^drover: run .* is not pending or running, so it cannot be cancelled$/);

    fix = false;
    const broken = await cliJson('runs', 'create', 'breaks');
    await engine.drover.waitForRun(broken.id);
    fix = true;
    const resumed = await cliJson('runs', 'resume', broken.id);
    // The run view is read after the resume commits; a quick worker may already have finished it.
    expect(resumed.id).toBe(broken.id);
    expect(['running', 'succeeded']).toContain(resumed.status);
    expect((await engine.drover.waitForRun(broken.id)).status).toBe('succeeded');
    expectOneLine(await cli('runs', 'resume', broken.id), 1, /^drover: run .* is succeeded; only failed or cancelled runs can be retried$/);
    const audit = (await engine.drover.getAudit(held.id)).items;
    expect(audit.find((e) => e.type === 'run.cancelled')).toMatchObject({ actor: ACTOR });
    expect((await engine.drover.getAudit(broken.id)).items.find((e) => e.type === 'run.retried')).toMatchObject({ actor: ACTOR });
    fix = false;
  });

  it('runs audit prints the trail with step names; --json gives {items} with stepName', async () => {
    const run = await cliJson('runs', 'create', 'pair');
    await engine.drover.waitForRun(run.id);
    const table = await cli('runs', 'audit', run.id);
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['AT', 'TYPE', 'STEP', 'ACTOR', 'DATA']);
    expect(lines[1]).toMatch(new RegExp(`^\\S+\\s+run\\.created\\s+-\\s+${ACTOR}`));
    expect(lines.some((l) => /step\.succeeded\s+b\s+worker:/.test(l))).toBe(true);
    const { items } = await cliJson('runs', 'audit', run.id);
    expect(items[0]).toMatchObject({ type: 'run.created', stepName: null, actor: ACTOR });
    expect(items.filter((e: any) => e.type === 'step.succeeded').map((e: any) => e.stepName)).toEqual(['a', 'b']);
  });

  it('runs list filters and pages like the API; runs get prints the run and its steps', async () => {
    for (let i = 0; i < 3; i++) await cli('runs', 'create', 'pair', '--workspace', 'listing');
    const page1 = await cliJson('runs', 'list', '--workspace', 'listing', '--limit', '2');
    expect(page1.items).toHaveLength(2);
    expect(typeof page1.nextCursor).toBe('string');
    const page2 = await cliJson('runs', 'list', '--workspace', 'listing', '--limit', '2', '--cursor', page1.nextCursor);
    expect([page2.items.length, page2.nextCursor]).toEqual([1, null]);
    const failed = await cliJson('runs', 'list', '--status', 'failed', '--workflow', 'breaks');
    expect(failed.items.length).toBeGreaterThan(0);
    expect(failed.items.every((r: any) => r.status === 'failed' && r.workflow === 'breaks')).toBe(true);

    const table = await cli('runs', 'list', '--workspace', 'listing', '--limit', '2');
    const lines = table.stdout.trim().split('\n');
    expect(lines[0].split(/\s{2,}/)).toEqual(['ID', 'WORKFLOW', 'STATUS', 'WORKSPACE', 'CREATED', 'TOOK']);
    expect(lines.slice(1, 3).every((l) => /^[0-9a-f-]{36}\s+pair\s+\S+\s+listing\s/.test(l))).toBe(true);
    expect(lines[3]).toBe(`more: drover runs list --cursor ${page1.nextCursor} --limit 2 --workspace listing`);
    expect((await cli('runs', 'list', '--workspace', 'nobody-here')).stdout.trim()).toBe('no runs');

    const id = page2.items[0].id;
    await engine.drover.waitForRun(id);
    const got = await cli('runs', 'get', id);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(new RegExp(`^run\\s+${id}\\nworkflow\\s+pair\\nstatus\\s+succeeded\\n`));
    expect(got.stdout).toMatch(/^STEP\s+STATUS\s+ATTEMPTS\s+QUEUE\s+DEPENDS ON\s+TOOK\s+ERROR$/m);
    expect(got.stdout).toMatch(/^b\s+succeeded\s+1\s+default\s+a\s/m);
    expect((await cliJson('runs', 'get', id)).steps.map((s: any) => s.name)).toEqual(['a', 'b']);
  });

  it('workflows list and workers list print a table, or {items} with --json', async () => {
    const wf = await cli('workflows', 'list');
    expect(wf.stdout.split('\n')[0].split(/\s{2,}/)).toEqual(['NAME', 'VERSION', 'STEPS', 'REGISTERED']);
    expect(wf.stdout).toMatch(/^pair\s+\S+\s+a,b\s/m);
    expect((await cliJson('workflows', 'list')).items.map((w: any) => w.name).sort()).toEqual(['breaks', 'hold', 'pair']);
    const wk = await cli('workers', 'list');
    expect(wk.stdout.split('\n')[0].split(/\s{2,}/)).toEqual(['ID', 'STATUS', 'HOST', 'PID', 'QUEUES', 'CONCURRENCY', 'LAST HEARTBEAT']);
    expect(wk.stdout).toMatch(/\sactive\s.*\sdefault\s/);
    const { items } = await cliJson('workers', 'list');
    expect(items).toEqual([expect.objectContaining({ status: 'active', queues: ['default'] })]);
  });

  it('answers bad input with one line naming what is wrong: exit 2 for usage errors, 1 for failures', async () => {
    const uuid = '00000000-0000-4000-8000-000000000000';
    const usage: Array<[string[], RegExp]> = [
      [['runs', 'list', '--status', 'done'], /'done' is invalid\. Allowed choices are pending, running, succeeded, failed, cancelled/],
      [['runs', 'list', '--limit', 'ten'], /--limit <n>' argument 'ten' is invalid\. must be a whole number from 1 to 100/],
      [['runs', 'list', '--limit', '500'], /must be a whole number from 1 to 100/],
      [['runs', 'list', '--cursor', 'garbage'], /^drover: cursor: /],
      [['runs', 'list', '--workflow', 'no spaces'], /^drover: workflow: /],
      [['runs', 'get', 'abc'], /"abc" is not a run id/],
      [['runs', 'cancel', '12'], /"12" is not a run id/],
      [['runs', 'audit', 'x'], /"x" is not a run id/],
      [['runs', 'wait', uuid, '--timeout-ms', 'soon'], /--timeout-ms <n>' argument 'soon' is invalid/],
      [['runs', 'create', 'pair', '--input', '{"a":'], /--input <json>' argument .* is not valid JSON/],
      [['runs', 'create', 'pair', '--workspace', '../x'], /^drover: workspace: /],
      [['runs', 'frobnicate'], /unknown command 'frobnicate'/],
      [['workers', 'list', '--all'], /unknown option '--all'/],
      [['keys', 'create', '--name', ' spaced'], /--name <name>' argument ' spaced' is invalid/],
    ];
    const results = await Promise.all(usage.map(([args]) => cli(...args)));
    usage.forEach(([args, pattern], i) => {
      expect([args.join(' '), results[i].code]).toEqual([args.join(' '), 2]);
      expectOneLine(results[i], 2, pattern);
    });
    expectOneLine(await cli('runs', 'get', uuid), 1, /^drover: run not found$/);
    expectOneLine(await cli('runs', 'cancel', uuid), 1, /^drover: run not found$/);
    expectOneLine(await cli('runs', 'create', 'ghost'), 1, /^drover: unknown workflow "ghost"$/);
    // With --json the one line is JSON, in the API's error shape.
    const asJson = async (...args: string[]) => {
      const r = await cli(...args, '--json');
      expect(r.stdout).toBe('');
      return { code: r.code, error: JSON.parse(r.stderr.trim()) };
    };
    expect(await asJson('runs', 'get', uuid)).toEqual({ code: 1, error: { error: { code: 'not_found', message: 'run not found' } } });
    expect(await asJson('runs', 'create', 'ghost')).toEqual({ code: 1, error: { error: { code: 'unknown_workflow', message: 'unknown workflow "ghost"' } } });
    expect(await asJson('runs', 'get', 'abc')).toEqual({ code: 2, error: { error: { code: 'usage_error', message: expect.stringContaining('"abc" is not a run id') } } });
    expect(await asJson('runs', 'list', '--workflow', 'no spaces')).toEqual({ code: 2, error: { error: { code: 'invalid_request', message: expect.stringMatching(/^workflow: /) } } });
  });

  it('--help lists the environment variables with their defaults', async () => {
    const help = await cli('--help');
    expect(help.code).toBe(0);
    for (const [name, value] of [['DATABASE_URL', 'embedded Postgres under DROVER_DATA_DIR'], ['REDIS_URL', 'unset'], ['DROVER_DATA_DIR', './.drover'],
      ['PORT', '3000'], ['HOST', '127.0.0.1'], ['DROVER_AUTH', 'on'], ['LOG_LEVEL', 'info'], ['DROVER_MAX_INPUT_BYTES', '1048576'], ['DROVER_NAMESPACE', 'drover']]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${name}\\s.*default: ${value.replace(/\./g, '\\.')}`, 'm'));
    }
    for (const command of ['runs', 'workflows', 'workers', 'keys', 'migrate']) expect(help.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    // Each variable once.
    const variables = [...help.stdout.matchAll(/^  ((?:DROVER|OTEL)_[A-Z_]+|DATABASE_URL|REDIS_URL|PORT|HOST|LOG_LEVEL)\s/gm)].map((m) => m[1]);
    expect(variables.length).toBeGreaterThan(10);
    expect(variables.filter((v, i) => variables.indexOf(v) !== i)).toEqual([]);
  });

  it('keys create, keys list and migrate print JSON with --json', async () => {
    const created = await cliJson('keys', 'create', '--name', 'ops json');
    expect(created).toMatchObject({ name: 'ops json', key: expect.stringMatching(/^drv_/), prefix: expect.any(String), revokedAt: null });
    const listed = await cliJson('keys', 'list');
    expect(listed).toEqual(expect.arrayContaining([expect.objectContaining({ id: created.id, name: 'ops json' })]));
    expect(JSON.stringify(listed)).not.toContain(created.key);
    expect(await cliJson('keys', 'revoke', created.prefix)).toMatchObject({ id: created.id, revokedAt: expect.any(String) });
    expect(await cliJson('migrate')).toEqual({ applied: [] });
  });
});
