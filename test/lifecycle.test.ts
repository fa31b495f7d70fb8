import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually } from './helpers/engine';
import { expectNoStackTraces, postgresOf, processesOf, READY } from './helpers/lifecycle';
import { cliEnv, http, runCli, spawnDrover, type DroverProcess } from './helpers/server-process';

// Process lifecycle as users meet it: `npm start`, signals, Ctrl-C, a second start.
// Each spawns real processes; nothing may be left running afterwards.

const ROOT = path.resolve(__dirname, '..');

/** `npm start` in its own process group (as a terminal or a container runtime runs it). */
function npmStart(env: NodeJS.ProcessEnv): { child: ChildProcess; output(): string; exited: Promise<number | null> } {
  const child = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

describe('process lifecycle', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const stragglers: DroverProcess[] = [];

  // One data dir for all (initdb once); each test must leave nothing running.
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-life-'));
    fs.chmodSync(dir, 0o755);
  });
  beforeEach(() => {
    env = cliEnv({ DROVER_DATA_DIR: dir, PORT: '0', DROVER_AUTH: 'off' });
  });
  afterEach(async () => {
    for (const p of stragglers.splice(0)) await p.stop('SIGKILL');
    for (const pid of processesOf(dir)) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function whenReady(out: () => string, exited: Promise<number | null>): Promise<void> {
    let done = false;
    void exited.then(() => { done = true; });
    await eventually(() => {
      if (done) throw new Error(`exited before it was ready: ${out()}`);
      return READY.test(out());
    }, 90_000, 'drover start to be ready');
  }

  it.each(['SIGTERM', 'SIGINT'] as const)('%s to npm (what a container runtime sends to CMD ["npm","start"]) stops drover and its Postgres, exit 0', async (signal) => {
    const npm = npmStart(env);
    await whenReady(npm.output, npm.exited);
    expect(postgresOf(dir)).not.toHaveLength(0);
    process.kill(npm.child.pid!, signal);
    expect(await npm.exited).toBe(0);
    await eventually(() => processesOf(dir).length === 0, 20_000, `nothing left of ${dir}: ${processesOf(dir).join(' ')}`);
    expectNoStackTraces(npm.output());
  }, 120_000);

  it('SIGHUP to npm (it dies without passing it on): drover notices it is orphaned and stops, nothing left', async () => {
    const npm = npmStart(env);
    await whenReady(npm.output, npm.exited);
    process.kill(npm.child.pid!, 'SIGHUP');
    await npm.exited;
    await eventually(() => processesOf(dir).length === 0, 20_000, `nothing left of ${dir}: ${processesOf(dir).join(' ')}`);
    // The orphaned drover wrote its last lines into the pipes npm left behind; read them to the end.
    await eventually(() => /shutting down/.test(npm.output()), 10_000, `the "shutting down" line in: ${npm.output()}`);
    expectNoStackTraces(npm.output());
  }, 120_000);

  it('Ctrl-C in a terminal (SIGINT to the whole process group of npm start) shuts down quietly, exit 0', async () => {
    const npm = npmStart(env);
    await whenReady(npm.output, npm.exited);
    process.kill(-npm.child.pid!, 'SIGINT');
    expect(await npm.exited).toBe(0);
    await eventually(() => processesOf(dir).length === 0, 20_000, `nothing left of ${dir}: ${processesOf(dir).join(' ')}`);
    expect(npm.output()).not.toMatch(/exiting now/);
    expectNoStackTraces(npm.output());
  }, 120_000);

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s to drover start\'s process group stops it quietly, exit 0, no postgres left', async (signal) => {
    const proc = await spawnDrover(['start'], env, { ready: READY, timeoutMs: 90_000, detached: true });
    stragglers.push(proc);
    process.kill(-proc.child.pid!, signal);
    expect(await proc.exited).toBe(0);
    expect(postgresOf(dir)).toEqual([]);
    expect(proc.stderr()).toMatch(new RegExp(`${signal}: shutting down`));
    expectNoStackTraces(proc.stdout() + proc.stderr());
  }, 120_000);

  it('a second start on the same data dir refuses in one line and leaves the first one working', async () => {
    env = cliEnv({ DROVER_DATA_DIR: dir, PORT: '0' }); // auth on: no warning line
    const first = await spawnDrover(['start'], env, { ready: READY, timeoutMs: 90_000 });
    stragglers.push(first);
    const url = /listening on (http:\/\/\S+)/.exec(first.stdout())![1];
    const second = await runCli(['start'], env, { timeoutMs: 60_000 });
    expect(second.code).not.toBe(0);
    const lines = second.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^drover: .*already running .*pid ${first.child.pid}.*port \\d+`));
    expect(second.stdout).not.toMatch(/stopped a Postgres/);
    expect((await http(`${url}/ready`)).status).toBe(200);
    expect(first.stderr()).not.toMatch(/shutting down/);
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(postgresOf(dir)).toEqual([]);
  }, 150_000);
});
