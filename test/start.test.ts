import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { eventually } from './helpers/engine';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';

/** Postgres processes serving this data dir. */
function postgresOf(dataDir: string): string[] {
  const r = spawnSync('pgrep', ['-f', `postgres -D ${dataDir}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

// `drover start` on the embedded default: no DATABASE_URL, no REDIS_URL.
describe('drover start (embedded default)', () => {
  let dir: string;
  let proc: DroverProcess | undefined;
  let key: string;
  let firstRunId: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-start-'));
    fs.chmodSync(dir, 0o755);
  });
  afterAll(async () => {
    await proc?.stop('SIGKILL');
    for (const pid of postgresOf(path.join(dir, 'pg'))) process.kill(Number(pid), 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = () => spawnDrover(['start'], cliEnv({ DROVER_DATA_DIR: dir, PORT: '0' }), { ready: /try it: .*(http:\/\/\S+)\/api\/runs/, timeoutMs: 60_000 });
  const urlOf = (p: DroverProcess) => /listening on (http:\/\/\S+)/.exec(p.stdout())![1];

  it('runs a demo workflow to the end, lists its queues, and stops with no postgres left', async () => {
    proc = await start();
    const out = proc.stdout();
    key = /API key\s+(drv_\S+)/.exec(out)![1];
    expect(key).toMatch(/^drv_/);
    // Printed once (it lands in container logs): the curl hint names $DROVER_API_KEY instead.
    expect((out + proc.stderr()).split(key.slice(-43)).length - 1).toBe(1);
    expect(out).toMatch(/try it: +curl .*-H "Authorization: Bearer \$DROVER_API_KEY"/);
    expect(out).toMatch(/export DROVER_API_KEY=/);
    const url = urlOf(proc);
    const auth = { authorization: `Bearer ${key}` };
    const created = await http(`${url}/api/runs`, { method: 'POST', json: { workflow: 'demo' }, headers: auth });
    expect(created.status).toBe(201);
    firstRunId = created.body.id;
    const run = await eventually(async () => {
      const r = await http(`${url}/api/runs/${created.body.id}`, { headers: auth });
      return r.body.status === 'succeeded' ? r.body : undefined;
    }, 30_000, 'the demo run to succeed');
    expect(run.steps.map((s: any) => [s.name, s.status])).toEqual([
      ['fetch', 'succeeded'], ['count-words', 'succeeded'], ['flaky-lookup', 'succeeded'], ['delayed-enrich', 'succeeded'], ['summarize', 'succeeded'],
    ]);
    expect(run.steps[2].attempts).toBe(3);
    const board = await http(`${url}/admin/queues/api/queues?page=1&jobsPerPage=10`, { headers: auth });
    expect(board.body.queues.map((q: any) => q.name)).toContain('drover.default');

    expect(postgresOf(path.join(dir, 'pg'))).not.toHaveLength(0);
    expect(await proc.stop('SIGTERM')).toBe(0);
    proc = undefined;
    expect(postgresOf(path.join(dir, 'pg'))).toEqual([]);
  }, 90_000);

  it('keeps earlier runs across a restart and prints no second key', async () => {
    proc = await start();
    expect(proc.stdout()).not.toMatch(/API key\s+drv_/);
    expect(proc.stdout()).toContain('made on first start');
    const earlier = await http(`${urlOf(proc)}/api/runs/${firstRunId}`, { headers: { authorization: `Bearer ${key}` } });
    expect(earlier.body).toMatchObject({ id: firstRunId, status: 'succeeded' });
    await proc.stop('SIGTERM');
    proc = undefined;
  }, 90_000);

  it('starts again after a SIGKILL left its postgres running', async () => {
    proc = await start();
    await proc.stop('SIGKILL');
    proc = undefined;
    expect(postgresOf(path.join(dir, 'pg'))).not.toHaveLength(0);
    proc = await start();
    expect(proc.stdout()).toMatch(/stopped a Postgres \(pid \d+\) left running by an earlier start/);
    const health = await http(`${urlOf(proc)}/health`);
    expect(health.body).toEqual({ status: 'ok' });
    expect(await proc.stop('SIGTERM')).toBe(0);
    proc = undefined;
    expect(postgresOf(path.join(dir, 'pg'))).toEqual([]);
  }, 120_000);

  it('with --json prints one line of JSON once started (the key made on a first start in it), and nothing else on stdout', async () => {
    const jsonDir = path.join(dir, 'json');
    proc = await spawnDrover(['start', '--json'], cliEnv({ DROVER_DATA_DIR: jsonDir, PORT: '0' }), { ready: /^\{.*\}\n/, timeoutMs: 60_000 });
    const lines = proc.stdout().trim().split('\n');
    expect(lines).toHaveLength(1);
    const info = JSON.parse(lines[0]);
    expect(info).toMatchObject({
      url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), auth: true, apiKey: expect.stringMatching(/^drv_/),
      worker: { id: expect.any(String), queues: ['default'] }, embeddedPostgres: { dataDir: jsonDir, port: expect.any(Number) },
    });
    expect(info.bullBoard).toBe(`${info.url}/admin/queues`);
    const runs = await http(`${info.url}/api/runs`, { headers: { authorization: `Bearer ${info.apiKey}` } });
    expect(runs.status).toBe(200);
    expect(await proc.stop('SIGTERM')).toBe(0);
    proc = undefined;
    expect(postgresOf(path.join(jsonDir, 'pg'))).toEqual([]);
  }, 90_000);
});
