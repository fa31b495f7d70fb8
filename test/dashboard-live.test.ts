import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { appendEvents } from '../src/audit/audit';
import { RunChangeFeed, type RunChange } from '../src/dashboard/run-changes';
import { createApp, type DroverApp } from '../src/http/app';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { openEventStream } from './helpers/web';

/** The dashboard's live path: audit trigger → one LISTEN per process → every event stream. */
describe('run change notifications', () => {
  let engine: EngineHarness;
  beforeEach(async () => {
    engine = await createEngine('redis');
  });
  afterEach(async () => {
    await engine.close();
  });

  const listenBackends = async () => (await engine.sql.query(`
    SELECT pid FROM pg_stat_activity WHERE application_name = 'drover-listen' AND datname = current_database()`)).map((r) => r.pid as number);

  const feedOf = (options: { reconnectMs?: number } = {}) => new RunChangeFeed({
    createClient: () => engine.drover.createListenClient(), readChanges: (afterId) => engine.drover.runsChangedSince(afterId), ...options,
  });

  it('tells subscribers which runs got events, once each, and "all" when too many changed to read', async () => {
    const feed = feedOf();
    const heard: RunChange[] = [];
    feed.subscribe((c) => heard.push(c));
    await eventually(() => feed.ready, 5000, 'the LISTEN connection');
    const [a, b] = [randomUUID(), randomUUID()];
    await appendEvents(engine.sql, 'test', [
      { type: 'step.log', runId: a, stepId: null }, { type: 'step.log', runId: b, stepId: null }, { type: 'step.log', runId: a, stepId: null },
    ]);
    await eventually(() => heard.length === 1, 5000, 'the notification');
    expect(new Set((heard[0] as { runIds: string[] }).runIds)).toEqual(new Set([a, b]));
    const c = randomUUID();
    await appendEvents(engine.sql, 'test', [{ type: 'step.log', runId: c, stepId: null }]);
    await eventually(() => heard.length === 2, 5000, 'the next notification');
    expect(heard[1]).toEqual({ runIds: [c] });
    const many = Array.from({ length: 2500 }, () => ({ type: 'step.log' as const, runId: randomUUID(), stepId: null }));
    await appendEvents(engine.sql, 'test', many);
    await eventually(() => heard.length === 3, 5000, 'the third notification');
    expect(heard[2]).toEqual({ all: true });
    await feed.close();
  });

  it('reconnects when its connection is killed (a Postgres restart) and tells subscribers to refresh', async () => {
    const feed = feedOf({ reconnectMs: 50 });
    const heard: RunChange[] = [];
    feed.subscribe((c) => heard.push(c));
    await eventually(() => feed.ready, 5000, 'the LISTEN connection');
    const [before] = await listenBackends();
    await engine.sql.query(`SELECT pg_terminate_backend($1)`, [before]);
    await eventually(async () => feed.ready && (await listenBackends()).some((pid) => pid !== before), 10_000, 'a new LISTEN connection');
    await eventually(() => heard.some((c) => 'all' in c), 5000, 'the refresh-everything change');
    const run = randomUUID();
    await appendEvents(engine.sql, 'test', [{ type: 'step.log', runId: run, stepId: null }]);
    await eventually(() => heard.some((c) => 'runIds' in c && c.runIds.includes(run)), 5000, 'a change after the reconnect');
    await feed.close();
  });

  describe('the event stream', () => {
    let droverApp: DroverApp;
    let server: Server;
    let url: string;
    beforeEach(async () => {
      droverApp = createApp({ drover: engine.drover, auth: false, eventHeartbeatMs: 100 });
      server = droverApp.app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterEach(async () => {
      droverApp.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    /** Opens `/events…` and collects what it sends until aborted. */
    const open = (path: string) => openEventStream(`${url}${path}`);

    it('serves every browser from one LISTEN connection, sends heartbeats, filters by run, and cleans up on disconnect', async () => {
      const run = randomUUID();
      const streams = await Promise.all([open('/events'), open(`/events?run=${run}`), open(`/events?run=${randomUUID()}`), open('/events')]);
      expect(streams[0].res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      await eventually(() => droverApp.runChanges.ready && droverApp.runChanges.size === 4, 5000, 'four subscribers');
      expect(await listenBackends()).toHaveLength(1);
      await appendEvents(engine.sql, 'test', [{ type: 'step.log', runId: run, stepId: null }]);
      await eventually(() => streams[1].text().includes(`event: change\ndata: ${run}`), 5000, 'the run stream to hear its run');
      await eventually(() => streams[0].text().includes('event: change'), 5000, 'the list stream to hear a change');
      expect(streams[2].text()).not.toContain('event: change');
      await eventually(() => streams[3].text().includes(': heartbeat'), 5000, 'a heartbeat');
      await Promise.all(streams.map((s) => s.close()));
      await eventually(() => droverApp.runChanges.size === 0, 5000, 'the subscribers to be gone');
    });

    it('ends open event streams when the app closes, so a server stops without waiting for browsers', async () => {
      const stream = await open('/events');
      await eventually(() => droverApp.runChanges.size === 1, 5000, 'the subscriber');
      const started = Date.now();
      droverApp.close();
      await stream.reading;
      expect(Date.now() - started).toBeLessThan(1000);
    });
  });
});
