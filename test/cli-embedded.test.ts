import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliEnv, runCli, spawnDrover, type DroverProcess } from './helpers/server-process';

/** Postgres processes serving this data dir. */
function postgresOf(pgDir: string): string[] {
  const r = spawnSync('pgrep', ['-f', `postgres -D ${pgDir}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

// `keys`, `migrate` and the operator commands need no server: with DATABASE_URL unset they use the
// embedded database under DROVER_DATA_DIR, a running `drover start`'s Postgres or one they start and stop.
describe('the CLI on the embedded database (no DATABASE_URL)', () => {
  let dir: string;
  let start: DroverProcess | undefined;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-cli-embedded-'));
    fs.chmodSync(dir, 0o755);
    env = cliEnv({ DROVER_DATA_DIR: path.join(dir, 'data'), PORT: '0' });
  });
  afterAll(async () => {
    await start?.stop('SIGKILL');
    for (const pid of postgresOf(path.join(dir, 'data', 'pg'))) process.kill(Number(pid), 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('names DROVER_DATA_DIR (not DATABASE_URL) when a command that reads finds no drover data yet', async () => {
    for (const args of [['keys', 'list'], ['runs', 'list'], ['workflows', 'list']]) {
      const result = await runCli(args, env, { cwd: dir });
      expect([args.join(' '), result.code, result.stderr.trim()]).toEqual([args.join(' '), 1,
        'drover: no drover data in ./data (DROVER_DATA_DIR): run `npm start` once, or set DATABASE_URL']);
    }
    expect(fs.existsSync(path.join(dir, 'data', 'pg'))).toBe(false);
  });

  it('keys create makes the database on a fresh data dir (no server ever ran), and stops the Postgres it started', async () => {
    const fresh = cliEnv({ DROVER_DATA_DIR: path.join(dir, 'fresh'), PORT: '0' });
    const created = await runCli(['keys', 'create', '--name', 'before-start', '--scope', 'producer', '--json'], fresh, { cwd: dir });
    expect(created.code).toBe(0);
    expect(created.stderr).toContain('drover: made a new drover database in ./fresh (DROVER_DATA_DIR)');
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'before-start', scope: 'producer', key: expect.stringMatching(/^drv_/) });
    const listed = await runCli(['keys', 'list', '--json'], fresh, { cwd: dir });
    expect([listed.code, JSON.parse(listed.stdout).map((k: any) => k.name)]).toEqual([0, ['before-start']]);
    expect(postgresOf(path.join(dir, 'fresh', 'pg'))).toEqual([]);
    // migrate on a fresh data dir makes the database and says which migrations it applied.
    const migrated = await runCli(['migrate', '--json'], cliEnv({ DROVER_DATA_DIR: path.join(dir, 'fresh-migrate'), PORT: '0' }), { cwd: dir });
    expect(migrated.code).toBe(0);
    expect(migrated.stderr).toContain('drover: made a new drover database in ./fresh-migrate (DROVER_DATA_DIR)');
    expect(JSON.parse(migrated.stdout).applied.length).toBeGreaterThan(10);
  });

  it('uses the Postgres of a running drover start, then starts and stops its own when none runs', async () => {
    start = await spawnDrover(['start'], env, { ready: /try it: /, timeoutMs: 60_000 });
    const pgDir = path.join(dir, 'data', 'pg');
    const running = postgresOf(pgDir);
    expect(running).not.toHaveLength(0);
    const created = await runCli(['keys', 'create', '--name', 'while-running', '--json'], env);
    expect([created.code, created.stderr]).toEqual([0, '']);
    const key = JSON.parse(created.stdout);
    expect(key).toMatchObject({ name: 'while-running', key: expect.stringMatching(/^drv_/) });
    expect(postgresOf(pgDir)).toEqual(running); // the server's Postgres, not a second one
    const workflows = await runCli(['workflows', 'list', '--json'], env);
    expect(JSON.parse(workflows.stdout).items.map((w: any) => w.name)).toContain('demo');
    expect(await start.stop('SIGTERM')).toBe(0);
    start = undefined;
    expect(postgresOf(pgDir)).toEqual([]);

    // No server: the command starts the embedded Postgres, and stops it when done.
    const listed = await runCli(['keys', 'list', '--json'], env);
    expect([listed.code, listed.stderr]).toEqual([0, '']);
    expect(JSON.parse(listed.stdout).map((k: any) => k.name).sort()).toEqual(['default', 'while-running']);
    expect(postgresOf(pgDir)).toEqual([]);
    const revoked = await runCli(['keys', 'revoke', key.prefix], env);
    expect([revoked.code, revoked.stdout.trim()]).toEqual([0, `revoked API key "while-running" (id ${key.id}, prefix ${key.prefix})`]);
    const migrated = await runCli(['migrate', '--json'], env);
    expect([migrated.code, JSON.parse(migrated.stdout)]).toEqual([0, { applied: [] }]);
    expect(postgresOf(pgDir)).toEqual([]);
  }, 120_000);
});
