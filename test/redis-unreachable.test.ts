import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../src/embedded/free-port';
import { RedisServer } from './harness/redis-server';
import { eventually, sleep } from './helpers/engine';
import { createTestDatabase, uniqueNamespace } from './helpers/env';
import { expectNoStackTraces, postgresOf, READY } from './helpers/lifecycle';
import { cliEnv, spawnDrover, type DroverProcess } from './helpers/server-process';

// An unreachable Redis, as users meet it: one warning line, quiet backoff, recovery.
describe('REDIS_URL pointing at a closed port', () => {
  let redis: RedisServer | undefined;
  let env: NodeJS.ProcessEnv;
  let port: number;
  const procs: DroverProcess[] = [];

  beforeEach(async () => {
    port = await freePort();
    env = cliEnv({ DATABASE_URL: await createTestDatabase(), REDIS_URL: `redis://127.0.0.1:${port}`, DROVER_NAMESPACE: uniqueNamespace(), PORT: '0', DROVER_AUTH: 'off', LOG_LEVEL: 'info' });
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.stop('SIGKILL');
    await redis?.stop();
    redis = undefined;
  });

  /** One warning line naming Redis and saying it retries; then quiet; then recovery once Redis answers. */
  async function expectOneWarningThenRecovery(proc: DroverProcess, recovered: RegExp): Promise<void> {
    const all = () => proc.stdout() + proc.stderr();
    await eventually(() => /unreachable/i.test(all()), 20_000, 'the warning');
    await sleep(3000); // quiet backoff: nothing more in the meantime
    const lines = all().trim().split('\n').filter((l) => /unreachable|ECONNREFUSED|error/i.test(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`Redis at 127\\.0\\.0\\.1:${port} is unreachable.*retr`, 'i'));
    expectNoStackTraces(all());
    redis = new RedisServer({ port });
    await redis.start();
    await eventually(() => recovered.test(all()), 30_000, `recovery (${recovered})`);
    expectNoStackTraces(all());
    const code = await proc.stop('SIGTERM');
    // On failure, say how it ended and what it printed (a signal gives code null).
    expect({ code, signal: proc.child.signalCode, output: code === 0 ? '' : all().slice(-4000) }).toEqual({ code: 0, signal: null, output: '' });
  }

  it('worker warns once, backs off quietly and starts consuming when Redis appears', async () => {
    const fixtures = path.join(__dirname, 'fixtures/api');
    const proc = await spawnDrover(['worker', '--module', path.join(fixtures, 'workflows.js')], env, { ready: null });
    procs.push(proc);
    await expectOneWarningThenRecovery(proc, /drover worker \S+ consuming/);
  }, 90_000);

  it('server warns once, backs off quietly and answers /ready when Redis appears', async () => {
    const proc = await spawnDrover(['server'], env);
    procs.push(proc);
    await expectOneWarningThenRecovery(proc, /Redis at .* is reachable again/i);
    // (stopped above)
  }, 90_000);

  it('a signal while start waits for Redis stops it and its embedded Postgres, exit 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-life-'));
    fs.chmodSync(dir, 0o755);
    try {
      const proc = await spawnDrover(['start'], { ...env, DATABASE_URL: undefined, DROVER_DATA_DIR: dir }, { ready: null });
      procs.push(proc);
      await eventually(() => /unreachable/.test(proc.stdout()), 60_000, 'the warning');
      expect(postgresOf(dir)).not.toHaveLength(0);
      expect(await proc.stop('SIGINT')).toBe(0);
      expect(postgresOf(dir)).toEqual([]);
      expectNoStackTraces(proc.stdout() + proc.stderr());
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('start warns once, backs off quietly and prints its banner when Redis appears', async () => {
    const proc = await spawnDrover(['start'], env, { ready: null });
    procs.push(proc);
    await expectOneWarningThenRecovery(proc, READY);
  }, 90_000);
});
