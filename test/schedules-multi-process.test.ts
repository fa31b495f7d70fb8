import { ApiKeyStore } from '../src/auth/api-keys';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { echo, sleep } from './helpers/fixtures';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';

const SECOND = 1000;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Schedules every second served by three `drover server` processes at once,
 * stopped all together for five seconds, and started again: each tick makes
 * exactly one run, the missed ticks follow each catch-up policy, a paused
 * schedule makes no run, and the overlap policies hold.
 */
describeEachBackend('schedules with three server processes', (backend) => {
  let engine: EngineHarness;
  let servers: DroverProcess[] = [];
  let env: NodeJS.ProcessEnv;
  let key: string;

  beforeAll(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({
      workflows: [
        { name: 'tick', steps: [{ name: 'a', processor: 'echo' }] },
        { name: 'slow', steps: [{ name: 'hold', processor: 'hold' }] },
      ],
      processors: { echo: echo(), hold: async (ctx) => { await sleep(2500, ctx.signal); return {}; } },
      concurrency: 20,
    });
    key = (await new ApiKeyStore(engine.sql).create('sched', { scope: 'admin' })).key;
    env = cliEnv({ DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), PORT: '0', DROVER_NAMESPACE: engine.namespace });
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await engine?.close();
  });

  const startServers = async () => { servers = await Promise.all([1, 2, 3].map(() => spawnDrover(['server'], env))); };
  const stopServers = async () => {
    const codes = await Promise.all(servers.map((s) => s.stop()));
    expect(codes).toEqual([0, 0, 0]);
    servers = [];
  };
  /** Fire times (ms) of a schedule's runs, oldest first, with when each run was made. */
  async function firesOf(name: string): Promise<Array<{ fireAt: number; createdAt: number; status: string; caughtUp: boolean }>> {
    const rows = await engine.sql.query(`
      SELECT r.idempotency_key, r.created_at, r.status, e.data FROM drover.runs r
        JOIN drover.audit_events e ON e.run_id = r.id AND e.type = 'run.created'
       WHERE r.idempotency_key LIKE $1 ORDER BY r.idempotency_key`, [`schedule:${name}:%`]);
    return rows.map((r) => ({
      fireAt: Date.parse(r.idempotency_key.slice(`schedule:${name}:`.length)), createdAt: new Date(r.created_at).getTime(), status: r.status,
      caughtUp: r.data?.caughtUp === true,
    }));
  }
  const seconds = <T extends { fireAt: number }>(fires: T[], from: number, to: number): T[] => fires.filter((f) => f.fireAt >= from && f.fireAt <= to);

  it('makes exactly one run per tick, catches up after an outage by policy, stops when paused, and keeps the overlap policies', async () => {
    await startServers();
    const every = (name: string, extra: Record<string, unknown> = {}) => engine.drover.createSchedule({ name, workflow: 'tick', cron: '* * * * * *', overlap: 'allow', ...extra });
    await every('latest', { catchUp: 'latest' });
    await every('all', { catchUp: 'all' });
    await every('none', { catchUp: 'none' });
    await every('pausable');
    await engine.drover.createSchedule({ name: 'skipper', workflow: 'slow', cron: '* * * * * *' });
    await engine.drover.createSchedule({ name: 'canceller', workflow: 'slow', cron: '* * * * * *', overlap: 'cancel_previous' });

    const firstUp = Date.now();
    await pause(3 * SECOND);
    const paused = await http(`${servers[1].url}/api/schedules/pausable/pause`, { method: 'POST', json: {}, headers: { authorization: `Bearer ${key}` } });
    expect(paused.status).toBe(200);
    const pausedAt = Date.now();
    await pause(5 * SECOND);
    await stopServers();
    const downAt = Date.now();
    await pause(5 * SECOND);
    const upAgainAt = Date.now();
    await startServers();
    await pause(4 * SECOND);
    await stopServers();

    // Exactly one run per tick: while the servers were up, every second has one run, and no tick made two.
    for (const name of ['latest', 'all', 'none']) {
      const fires = await firesOf(name);
      const created = await engine.sql.query(`
        SELECT count(*)::int AS n FROM drover.audit_events e JOIN drover.runs r ON r.id = e.run_id
         WHERE e.type = 'run.created' AND r.idempotency_key LIKE $1`, [`schedule:${name}:%`]);
      expect(created[0].n).toBe(fires.length);
      const up = seconds(fires, firstUp + 1500, downAt - 3 * SECOND);
      const expected = Math.floor((downAt - 3 * SECOND) / SECOND) - Math.ceil((firstUp + 1500) / SECOND) + 1;
      expect({ name, ticks: up.length }).toEqual({ name, ticks: expected });
      expect(new Set(fires.map((f) => f.fireAt)).size).toBe(fires.length);
    }

    // Catch-up after the outage: a tick more than 2 s late (the grace) was missed; each policy decides about those.
    const missedRuns = <T extends { caughtUp: boolean }>(fires: T[]): T[] => fires.filter((f) => f.caughtUp);
    const inOutage = <T extends { fireAt: number }>(fires: T[]): T[] => seconds(fires, downAt + 500, upAgainAt - 500);
    const skippedEvents = async (name: string) => (await engine.sql.query(`
      SELECT data FROM drover.audit_events WHERE type = 'schedule.skipped' AND data->>'name' = $1 AND data ? 'missed' ORDER BY id`, [name])).map((r) => r.data);
    const all = await firesOf('all');
    // all: no second is missing from the first tick to the last; the missed ones were made after the restart
    for (let i = 1; i < all.length; i++) expect(all[i].fireAt - all[i - 1].fireAt).toBe(SECOND);
    expect(inOutage(all).length).toBeGreaterThanOrEqual(4);
    expect(inOutage(all).every((f) => f.createdAt >= upAgainAt)).toBe(true);
    expect(await skippedEvents('all')).toEqual([]);
    // latest: one run for the most recent missed tick, the others skipped (audited)
    const latest = await firesOf('latest');
    expect(missedRuns(latest)).toHaveLength(1);
    expect(missedRuns(latest)[0].createdAt).toBeGreaterThanOrEqual(upAgainAt);
    const latestSkipped = await skippedEvents('latest');
    expect(latestSkipped).toHaveLength(1);
    expect(latestSkipped[0].missed).toBeGreaterThanOrEqual(3);
    expect(Date.parse(latestSkipped[0].to)).toBeLessThan(missedRuns(latest)[0].fireAt);
    // none: no missed tick made a run; they were skipped (audited)
    const none = await firesOf('none');
    expect(missedRuns(none)).toEqual([]);
    // A tick of the outage's last 2 s may still fire on time when a server is back within the grace: none fired later.
    expect(inOutage(none).filter((f) => f.createdAt - f.fireAt > 2 * SECOND + 500)).toEqual([]);
    const noneSkipped = await skippedEvents('none');
    expect(noneSkipped).toHaveLength(1);
    expect(noneSkipped[0].missed).toBeGreaterThanOrEqual(3);

    // Paused: nothing fired after the pause took effect.
    const pausable = await firesOf('pausable');
    expect(pausable.length).toBeGreaterThan(0);
    expect(pausable.filter((f) => f.fireAt > pausedAt + 500)).toEqual([]);
    expect((await engine.drover.getSchedule('pausable')).paused).toBe(true);

    // Overlap: skip made no run while one was open (2.5 s each), and said so; cancel_previous cancelled the one before.
    const skipper = await firesOf('skipper');
    for (let i = 1; i < skipper.length; i++) expect(skipper[i].fireAt - skipper[i - 1].fireAt).toBeGreaterThanOrEqual(2 * SECOND);
    const [skips] = await engine.sql.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE type = 'schedule.skipped' AND data->>'name' = 'skipper'`);
    expect(skips.n).toBeGreaterThan(0);
    const canceller = await firesOf('canceller');
    expect(canceller.length).toBeGreaterThan(5);
    expect(canceller.slice(0, -2).filter((f) => f.status === 'cancelled').length).toBeGreaterThan(canceller.length / 2);
  });
});
