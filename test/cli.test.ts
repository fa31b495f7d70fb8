import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Drover } from '../src/drover';
import { eventually } from './helpers/engine';
import { createEmptyDatabase, createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, runCli, spawnDrover, type CliResult } from './helpers/server-process';

const FIXTURES = path.join(__dirname, 'fixtures/api');

/** A failure the contract's way: non-zero, exactly one line on stderr, no stack trace. */
function expectOneLineError(result: CliResult, pattern: RegExp): void {
  expect(result.code).not.toBe(0);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe('the drover command line', () => {
  let databaseUrl: string;
  let namespace: string;
  let env: NodeJS.ProcessEnv;
  let drover: Drover;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    namespace = uniqueNamespace();
    env = cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), DROVER_NAMESPACE: namespace });
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    await drover.registerWorkflows([{ name: 'pair', steps: [{ name: 'a', processor: 'p' }, { name: 'b', processor: 'p', dependsOn: ['a'] }] }]);
  });
  afterAll(async () => {
    await drover?.close();
  });

  it('has --help on every command', async () => {
    for (const args of [['--help'], ['start', '--help'], ['server', '--help'], ['worker', '--help'], ['migrate', '--help'],
      ['keys', '--help'], ['keys', 'create', '--help'], ['keys', 'list', '--help'], ['keys', 'revoke', '--help'],
      ['runs', '--help'], ['runs', 'create', '--help'], ['runs', 'get', '--help'], ['runs', 'list', '--help'], ['runs', 'cancel', '--help'],
      ['runs', 'resume', '--help'], ['runs', 'audit', '--help'], ['runs', 'wait', '--help'], ['workflows', 'list', '--help'], ['workers', 'list', '--help']]) {
      const result = await runCli(args, env);
      expect([args.join(' '), result.code]).toEqual([args.join(' '), 0]);
      expect(result.stdout).toMatch(/^Usage: drover/);
    }
    expect((await runCli(['worker', '--help'], env)).stdout).toMatch(/--concurrency <n>/);
  });

  it('refuses bad commands, flags and JSON with one line', async () => {
    expectOneLineError(await runCli(['launch'], env), /^drover: unknown command 'launch'/);
    expectOneLineError(await runCli(['server', '--bogus'], env), /^drover: unknown option '--bogus'/);
    expectOneLineError(await runCli(['worker'], env), /required option '-m, --module <path>' not specified/);
    expectOneLineError(await runCli(['worker', '-m', 'x.js', '--concurrency', '0'], env), /--concurrency.*must be a whole number from 1 to 10000/);
    expectOneLineError(await runCli(['runs', 'create', 'pair', '--input', '{bad'], env), /--input.*is not valid JSON/);
    expectOneLineError(await runCli(['runs', 'create', 'pair', '--input', '[1,2]'], env), /--input.*must be a JSON object/);
    expectOneLineError(await runCli(['runs', 'get'], env), /missing required argument 'id'/);
    expectOneLineError(await runCli(['runs', 'get', 'nope'], env), /^drover: .*"nope" is not a run id/);
    expectOneLineError(await runCli(['runs', 'get', 'a', 'b'], env), /too many arguments/);
    expectOneLineError(await runCli(['keys', 'create'], env), /required option '-n, --name <name>'/);
  });

  it('refuses bad configuration with one line saying what to fix, without hanging', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-cli-'));
    try {
      const cases: Array<[NodeJS.ProcessEnv, string[], RegExp]> = [
        [{ ...env, PORT: 'abc' }, ['server'], /^drover: PORT must be a whole number/],
        [{ ...env, DATABASE_URL: 'mysql://db/x' }, ['runs', 'get', '00000000-0000-4000-8000-000000000000'], /^drover: DATABASE_URL must start with postgres:\/\//],
        [{ ...env, REDIS_URL: 'http://x' }, ['server'], /^drover: REDIS_URL must start with redis:\/\//],
        [{ ...env, DROVER_AUTH: 'maybe' }, ['server'], /^drover: DROVER_AUTH must be "on" or "off"/],
        [{ ...env, LOG_LEVEL: 'loud' }, ['migrate'], /^drover: LOG_LEVEL must be one of/],
        [{ ...env, DROVER_NAMESPACE: 'a b' }, ['worker', '-m', 'x.js'], /^drover: DROVER_NAMESPACE must match/],
        [{ ...env, DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x' }, ['server'], /^drover: cannot connect to 127\.0\.0\.1:1 \(connection refused\)/],
        [{ ...env, DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x' }, ['migrate'], /^drover: cannot connect to 127\.0\.0\.1:1/],
        [cliEnv({ DROVER_DATA_DIR: dataDir }), ['keys', 'list'], /^drover: no drover data in .* \(DROVER_DATA_DIR\): run `npm start` once, or set DATABASE_URL$/],
        [env, ['worker', '-m', 'missing.js'], /^drover: module not found: .*missing\.js/],
        [env, ['worker', '-m', path.join(FIXTURES, 'invalid.js')], /^drover: .*cycle/i],
      ];
      for (const [caseEnv, args, pattern] of cases) {
        const started = Date.now();
        expectOneLineError(await runCli(args, caseEnv, { timeoutMs: 20_000 }), pattern);
        expect(Date.now() - started).toBeLessThan(15_000);
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('server refuses an unmigrated database; migrate applies the migrations once', async () => {
    const empty = await createEmptyDatabase();
    expectOneLineError(await runCli(['server'], cliEnv({ DATABASE_URL: empty, PORT: '0' })), /^drover: the database has no drover schema: run "drover migrate" first$/);
    const first = await runCli(['migrate'], cliEnv({ DATABASE_URL: empty }));
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^applied \d+ migration\(s\): /);
    const second = await runCli(['migrate'], cliEnv({ DATABASE_URL: empty }));
    expect([second.code, second.stdout.trim()]).toEqual([0, 'the database is up to date']);
  });

  it('runs create and runs get print JSON; errors are one line', async () => {
    const created = await runCli(['runs', 'create', 'pair', '--input', '{"n":1}', '--idempotency-key', 'cli-1', '--json'], env);
    expect(created.code).toBe(0);
    const run = JSON.parse(created.stdout);
    expect(run).toMatchObject({ workflow: 'pair', status: 'pending', input: { n: 1 }, idempotencyKey: 'cli-1', created: true });
    const got = await runCli(['runs', 'get', run.id, '--json'], env);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ id: run.id, steps: [{ name: 'a' }, { name: 'b' }] });
    expect((await drover.getAudit(run.id)).items[0].actor).toBe(`cli:${os.userInfo().username}`);
    expectOneLineError(await runCli(['runs', 'get', '00000000-0000-4000-8000-000000000000'], env), /^drover: run not found$/);
    expectOneLineError(await runCli(['runs', 'create', 'ghost'], env), /^drover: unknown workflow "ghost"$/);
    expectOneLineError(await runCli(['runs', 'create', 'pair', '--workspace', '../x'], env), /^drover: workspace: /);
  });

  it('worker loads a TypeScript module, runs its steps, and stops gracefully on SIGTERM', async () => {
    const worker = await spawnDrover(['worker', '--module', path.join(FIXTURES, 'typed.ts'), '--queues', 'typed,default', '--concurrency', '2'], env, {
      ready: /drover worker (\S+) consuming typed, default \(concurrency 2\)/,
    });
    const run = await drover.createRun({ workflow: 'greet', input: { name: 'ada' } });
    const done = await drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ hi: { text: 'hello ada' } });
    const workerId = worker.url;
    expect((await drover.listWorkers()).find((w) => w.id === workerId)?.status).toBe('active');
    expect(await worker.stop('SIGTERM')).toBe(0);
    expect(worker.stderr()).toMatch(/SIGTERM: shutting down/);
    expect((await drover.listWorkers()).find((w) => w.id === workerId)?.status).toBe('stopped');
  });

  it('server stops on SIGINT with exit code 0', async () => {
    const server = await spawnDrover(['server'], { ...env, PORT: '0' });
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect(await server.stop('SIGINT')).toBe(0);
  });

  it('server and worker print one line of JSON with --json once ready', async () => {
    // LOG_LEVEL=info: the server logs as it starts, on stderr, so stdout is the JSON alone.
    const server = await spawnDrover(['server', '--json'], { ...env, PORT: '0', LOG_LEVEL: 'info' }, { ready: /^\{"url":"(http:\/\/[^"]+)"\}$/m });
    expect(JSON.parse(server.stdout())).toEqual({ url: server.url });
    await eventually(() => server.stderr().includes('"msg":"server listening"'), 5000, 'the log line on stderr');
    expect(server.stdout().trim().split('\n')).toHaveLength(1);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const worker = await spawnDrover(['worker', '--json', '--module', path.join(FIXTURES, 'typed.ts'), '--queues', 'typed', '--concurrency', '3'], env, {
      ready: /^\{"id":"([^"]+)".*\}$/m,
    });
    try {
      expect(JSON.parse(worker.stdout())).toEqual({ id: worker.url, queues: ['typed'], concurrency: 3, metrics: null });
      // Stopped once it is registered and heartbeating, as the text-mode test stops it after a run.
      await eventually(async () => (await drover.listWorkers()).find((w) => w.id === worker.url)?.status === 'active', 10_000, 'the worker active');
    } finally {
      // The exit code with what the processes said, so an unclean stop shows why.
      expect({ code: await worker.stop('SIGTERM'), stderr: worker.stderr() }).toEqual({ code: 0, stderr: expect.stringContaining('shutting down') });
      expect({ code: await server.stop('SIGTERM'), stderr: server.stderr() }).toEqual({ code: 0, stderr: expect.stringContaining('shutting down') });
    }
  });
});
