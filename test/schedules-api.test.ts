import { ApiKeyStore } from '../src/auth/api-keys';
import { startServer, type DroverServer } from '../src/http/server';
import { dueFireTimes } from '../src/schedules/schedule-definition';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { echo } from './helpers/fixtures';
import { cliEnv, http, runCli } from './helpers/server-process';

describe('catch-up policies (fire times due after downtime)', () => {
  const from = new Date('2026-01-01T00:00:00Z');
  const now = new Date('2026-01-01T00:00:05.300Z');
  const secs = (ds: Date[]) => ds.map((d) => d.toISOString().slice(17, 19));
  it('fires current ticks under every policy; of the missed ones all fires each, latest the last, none none', () => {
    expect(secs(dueFireTimes('* * * * * *', 'UTC', from, now, 'all', 2000).fire)).toEqual(['00', '01', '02', '03', '04', '05']);
    expect(dueFireTimes('* * * * * *', 'UTC', from, now, 'latest', 2000)).toEqual({
      fire: [new Date('2026-01-01T00:00:03Z'), new Date('2026-01-01T00:00:04Z'), new Date('2026-01-01T00:00:05Z')], late: 1,
      skipped: [new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:01Z'), new Date('2026-01-01T00:00:02Z')],
    });
    expect(secs(dueFireTimes('* * * * * *', 'UTC', from, now, 'none', 2000).fire)).toEqual(['04', '05']);
    expect(secs(dueFireTimes('* * * * * *', 'UTC', from, now, 'none', 2000).skipped)).toEqual(['00', '01', '02', '03']);
    // A late tick within the grace is not downtime: every policy fires it.
    expect(secs(dueFireTimes('* * * * * *', 'UTC', from, new Date('2026-01-01T00:00:01.500Z'), 'none', 2000).fire)).toEqual(['00', '01']);
    expect(dueFireTimes('* * * * * *', 'UTC', new Date('2026-01-01T00:00:10Z'), now, 'all', 2000)).toEqual({ fire: [], late: 0, skipped: [] });
    // at most 100, the latest ones
    const many = dueFireTimes('* * * * * *', 'UTC', from, new Date('2026-01-01T01:00:00Z'), 'all', 2000).fire;
    expect(many).toHaveLength(100);
    expect(many[99].toISOString()).toBe('2026-01-01T01:00:00.000Z');
    // time zones: 09:00 in Berlin is 08:00 UTC in winter
    expect(dueFireTimes('0 9 * * *', 'Europe/Berlin', new Date('2026-01-05T07:00:00Z'), new Date('2026-01-05T08:00:01Z'), 'latest', 2000).fire
      .map((d) => d.toISOString())).toEqual(['2026-01-05T08:00:00.000Z']);
  });
});

describeEachBackend('schedules over the API, the CLI and modules', (backend) => {
  let engine: EngineHarness;
  let server: DroverServer;
  let admin: Record<string, string>;
  let reader: Record<string, string>;
  const api = (path: string, init: Parameters<typeof http>[1] = {}, who = admin) =>
    http(`${server.url}${path}`, { ...init, headers: { ...who, ...(init.headers as Record<string, string> | undefined) } });

  beforeEach(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({
      workflows: [{ name: 'nightly', steps: [{ name: 'a', processor: 'echo' }] },
        { name: 'typed', inputSchema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] }, steps: [{ name: 'a', processor: 'echo' }] }],
      processors: { echo: echo() },
      schedules: [{ name: 'from-module', workflow: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', input: { from: 'module' } }],
    });
    const keys = new ApiKeyStore(engine.sql);
    admin = { authorization: `Bearer ${(await keys.create('ops', { scope: 'admin' })).key}` };
    reader = { authorization: `Bearer ${(await keys.create('viewer', { scope: 'read' })).key}` };
    server = await startServer({ drover: engine.drover, port: 0 });
  });
  afterEach(async () => {
    await server.close();
    await engine.close();
  });

  it('creates (201), reads with nextFireAt, lists, pauses, resumes and deletes a schedule, each audited', async () => {
    const created = await api('/api/schedules', { method: 'POST', json: { name: 'hourly', workflow: 'nightly', cron: '15 * * * *', input: { n: 1 }, overlap: 'allow', catchUp: 'all' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'hourly', workflow: 'nightly', cron: '15 * * * *', timezone: 'UTC', input: { n: 1 }, overlap: 'allow', catchUp: 'all', paused: false, source: 'api' });
    const next = new Date(created.body.nextFireAt);
    expect(next.getUTCMinutes()).toBe(15);
    expect(next.getTime() - Date.now()).toBeGreaterThan(0);
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(3_600_000);
    const got = await api('/api/schedules/hourly', {}, reader);
    expect(got.status).toBe(200);
    expect(got.body.nextFireAt).toBe(created.body.nextFireAt);
    const list = await api('/api/schedules', {}, reader);
    expect(list.body.items.map((s: { name: string }) => s.name)).toEqual(['from-module', 'hourly']);
    const fromModule = list.body.items[0];
    expect(fromModule).toMatchObject({ source: 'module', timezone: 'Europe/Berlin', input: { from: 'module' } });
    // 03:00 in Berlin is 01:00 or 02:00 UTC.
    expect([1, 2]).toContain(new Date(fromModule.nextFireAt).getUTCHours());

    const paused = await api('/api/schedules/hourly/pause', { method: 'POST', json: {} });
    expect(paused.body).toMatchObject({ paused: true, nextFireAt: null });
    const resumed = await api('/api/schedules/hourly/resume', { method: 'POST', json: {} });
    expect(resumed.body.paused).toBe(false);
    expect(new Date(resumed.body.nextFireAt).getUTCMinutes()).toBe(15);
    const deleted = await api('/api/schedules/hourly', { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect((await api('/api/schedules/hourly')).status).toBe(404);
    const events = await engine.sql.query(`SELECT type, actor FROM drover.audit_events WHERE type LIKE 'schedule.%' AND data->>'name' = 'hourly' ORDER BY id`);
    expect(events).toEqual([
      { type: 'schedule.created', actor: 'api:ops' }, { type: 'schedule.paused', actor: 'api:ops' },
      { type: 'schedule.resumed', actor: 'api:ops' }, { type: 'schedule.deleted', actor: 'api:ops' },
    ]);
  });

  it('answers bad schedules with precise errors: 400, 409 for a taken name, 422 for a bad cron, time zone or unknown workflow, 403, 404', async () => {
    const post = (json: unknown, who = admin) => api('/api/schedules', { method: 'POST', json }, who);
    expect((await post({ name: 'a1', workflow: 'nightly', cron: '* * * * *' })).status).toBe(201);
    const taken = await post({ name: 'a1', workflow: 'nightly', cron: '* * * * *' });
    expect(taken.status).toBe(409);
    expect(taken.body.error).toEqual({ code: 'already_exists', message: 'a schedule named "a1" already exists (delete it first, or pick another name)' });
    const cases: Array<[unknown, number, string, string]> = [
      [{ name: 'b', workflow: 'nightly', cron: '61 * * * *' }, 422, 'invalid_schedule', 'schedule "b": cron "61 * * * *" is not valid'],
      [{ name: 'b', workflow: 'nightly', cron: '* * *' }, 422, 'invalid_schedule', 'schedule "b": cron "* * *" has 3 fields; it needs five (minute hour day month weekday) or six with seconds first'],
      [{ name: 'b', workflow: 'nightly', cron: '* * * * * * *' }, 422, 'invalid_schedule', 'has 7 fields'],
      [{ name: 'b', workflow: 'nightly', cron: '* * * * *', timezone: 'Mars/Olympus' }, 422, 'invalid_schedule', 'schedule "b": timezone "Mars/Olympus" is not an IANA time zone'],
      [{ name: 'b', workflow: 'nightly', cron: '* * * * *', overlap: 'queue' }, 422, 'invalid_schedule', 'overlap must be one of skip, allow, cancel_previous'],
      [{ name: 'b', workflow: 'nightly', cron: '* * * * *', catchUp: 'some' }, 422, 'invalid_schedule', 'catchUp must be one of none, latest, all'],
      [{ name: 'B!', workflow: 'nightly', cron: '* * * * *' }, 422, 'invalid_schedule', 'name must match'],
      [{ name: 'b', workflow: 'nightly', cron: '* * * * *', every: 5 }, 422, 'invalid_schedule', 'unknown field "every"'],
      [{ name: 'b', workflow: 'nosuch', cron: '* * * * *' }, 422, 'unknown_workflow', 'unknown workflow "nosuch"'],
      // Its ticks could never start a run: refused at once, as the run would be.
      [{ name: 'b', workflow: 'typed', cron: '* * * * *', input: { n: 'x' } }, 422, 'invalid_input', 'the input does not match the input schema of workflow "typed": input.n: must be integer'],
      [{ name: 'b', workflow: 'typed', cron: '* * * * *' }, 422, 'invalid_input', 'workflow "typed"'],
      [[1, 2], 400, 'invalid_request', 'body: expected a JSON object'],
    ];
    for (const [body, status, code, message] of cases) {
      const res = await post(body);
      expect({ body, status: res.status, code: res.body?.error?.code }).toEqual({ body, status, code });
      expect(res.body.error.message).toContain(message);
    }
    const forbidden = await post({ name: 'c', workflow: 'nightly', cron: '* * * * *' }, reader);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.error.message).toMatch(/cannot create schedules: that needs a key of scope admin/);
    expect((await api('/api/schedules/a1/pause', { method: 'POST', json: {} }, reader)).status).toBe(403);
    expect((await api('/api/schedules/a1', { method: 'DELETE' }, reader)).status).toBe(403);
    expect((await api('/api/schedules/nosuch/pause', { method: 'POST', json: {} })).status).toBe(404);
    expect((await api('/api/schedules/nosuch', { method: 'DELETE' })).body.error).toEqual({ code: 'not_found', message: 'schedule "nosuch" not found' });
    expect((await api('/api/schedules/a1', { method: 'PUT', json: {} })).status).toBe(405);
    expect((await http(`${server.url}/api/schedules`)).status).toBe(401);
    expect((await engine.sql.query(`SELECT count(*)::int AS n FROM drover.schedules`))[0].n).toBe(2);
  });

  it('drover schedules list|create|pause|resume|delete, with --json', async () => {
    const env = cliEnv({ DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), DROVER_NAMESPACE: engine.namespace });
    const made = await runCli(['schedules', 'create', 'cli-one', '--workflow', 'nightly', '--cron', '*/5 * * * *', '--input', '{"via":"cli"}', '--catch-up', 'none', '--json'], env);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({ name: 'cli-one', cron: '*/5 * * * *', input: { via: 'cli' }, catchUp: 'none', overlap: 'skip' });
    const list = await runCli(['schedules', 'list'], env);
    expect(list.stdout).toMatch(/^NAME\s+WORKFLOW\s+CRON/);
    expect(list.stdout).toMatch(/cli-one\s+nightly\s+\*\/5 \* \* \* \*\s+UTC\s+active/);
    expect((await runCli(['schedules', 'pause', 'cli-one'], env)).stdout).toBe('paused schedule cli-one: nightly at "*/5 * * * *" (UTC), paused\n');
    expect(JSON.parse((await runCli(['schedules', 'resume', 'cli-one', '--json'], env)).stdout).paused).toBe(false);
    const bad = await runCli(['schedules', 'create', 'cli-two', '--workflow', 'nightly', '--cron', 'every day'], env);
    expect(bad.code).toBe(2); // bad input, as --overlap bad is
    expect(bad.stderr).toBe('drover: schedule "cli-two": cron "every day" has 2 fields; it needs five (minute hour day month weekday) or six with seconds first\n');
    expect((await runCli(['schedules', 'delete', 'cli-one'], env)).code).toBe(0);
    const gone = await runCli(['schedules', 'delete', 'cli-one'], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('drover: schedule "cli-one" not found\n');
    const events = await engine.sql.query(`SELECT type, actor FROM drover.audit_events WHERE data->>'name' = 'cli-one' ORDER BY id`);
    expect(events.map((e) => e.type)).toEqual(['schedule.created', 'schedule.paused', 'schedule.resumed', 'schedule.deleted']);
    expect(events[0].actor).toMatch(/^cli/);
  });

  it('fires a schedule (a tick in this process) and reports its lag in /metrics', async () => {
    await engine.drover.createSchedule({ name: 'every-second', workflow: 'nightly', cron: '* * * * * *', input: { tick: true } });
    const maintenance = engine.drover.startMaintenance({ retention: false });
    try {
      const run = (await eventually(async () => (await engine.drover.getSchedule('every-second')).lastRunId, 10_000, 'a tick')) as string;
      const done = await engine.drover.waitForRun(run);
      expect(done.status).toBe('succeeded');
      expect(done.input).toEqual({ tick: true });
      expect(done.idempotencyKey).toMatch(/^schedule:every-second:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
      const audit = (await engine.drover.getAudit(run)).items;
      expect(audit[0]).toMatchObject({ type: 'run.created', actor: 'schedule:every-second', data: expect.objectContaining({ schedule: 'every-second' }) });
      const metrics = await http(`${server.url}/metrics`);
      expect(metrics.text).toMatch(/drover_schedule_lag_seconds\{schedule="every-second"\} \d/);
    } finally {
      await maintenance.stop();
    }
  });
});
