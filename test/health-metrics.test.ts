import * as net from 'node:net';
import * as path from 'node:path';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, spawnDrover } from './helpers/server-process';
import { Metrics } from '../src/telemetry/metrics';
import { startMetricsServer } from '../src/telemetry/metrics-server';
import { WorkerRegistry } from '../src/worker/worker-registry';
import { sample } from './helpers/prometheus';

const MODULE = path.join(__dirname, 'fixtures/api/workflows.js');

const freePort = () => new Promise<number>((resolve, reject) => {
  const server = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo;
    server.close(() => resolve(port));
  }).on('error', reject);
});

// The gauges read Postgres only (not the queue store): one backend is enough here.
describe('the health gauges (oldest queued step, workers, stuck runs)', () => {
  let engine: EngineHarness;
  let metrics: Metrics;
  let removeSource: () => void;

  beforeEach(async () => {
    engine = await createEngine('redis');
    await engine.drover.registerWorkflows([
      { name: 'pair', steps: [{ name: 'a', processor: 'p' }, { name: 'b', processor: 'p', dependsOn: ['a'] }] },
      { name: 'cpu-one', steps: [{ name: 'x', processor: 'p', queue: 'cpu' }] },
      { name: 'later', steps: [{ name: 'y', processor: 'p', queue: 'slow', delayMs: 3_600_000 }] },
    ]);
    metrics = new Metrics({ processMetrics: false });
    removeSource = metrics.addHealthSource(() => engine.drover.readHealth());
  });
  afterEach(async () => {
    removeSource();
    await engine.close();
  });

  const scrape = () => metrics.registry.metrics();

  test('the age of the oldest queued step of each queue, not counting delays and backoffs still running', async () => {
    expect(sample(await scrape(), 'drover_oldest_queued_step_age_seconds')).toBeUndefined();
    const old = await engine.drover.createRun({ workflow: 'pair' });
    await engine.drover.createRun({ workflow: 'pair' });
    const cpu = await engine.drover.createRun({ workflow: 'cpu-one' });
    await engine.drover.createRun({ workflow: 'later' });
    // No worker runs: the first steps stay queued. Their queue times are moved back instead of waiting.
    await engine.sql.query(`UPDATE drover.steps SET queued_at = now() - interval '120 seconds' WHERE run_id = $1 AND status = 'queued'`, [old.id]);
    await engine.sql.query(`UPDATE drover.steps SET queued_at = now() - interval '40 seconds', available_at = now() + interval '1 hour' WHERE run_id = $1`, [cpu.id]);
    const text = await scrape();
    expect(sample(text, 'drover_oldest_queued_step_age_seconds', { queue: 'default' })).toBeGreaterThanOrEqual(120);
    expect(sample(text, 'drover_oldest_queued_step_age_seconds', { queue: 'default' })).toBeLessThan(130);
    // Backing off until later, or delayed on purpose: not waiting for a worker yet.
    expect(sample(text, 'drover_oldest_queued_step_age_seconds', { queue: 'cpu' })).toBeUndefined();
    expect(sample(text, 'drover_oldest_queued_step_age_seconds', { queue: 'slow' })).toBeUndefined();

    await engine.sql.query(`UPDATE drover.steps SET available_at = now() - interval '10 seconds' WHERE run_id = $1`, [cpu.id]);
    expect(sample(await scrape(), 'drover_oldest_queued_step_age_seconds', { queue: 'cpu' })).toBeGreaterThanOrEqual(10);
  });

  test('workers whose heartbeat is in time are active, silent ones stale, stopped ones neither', async () => {
    const registry = new WorkerRegistry(engine.sql);
    for (const id of ['w-live', 'w-silent', 'w-stopped']) await registry.register({ id, queues: ['default'], concurrency: 1, version: 't', processors: ['p'] });
    await engine.sql.query(`UPDATE drover.workers SET last_heartbeat_at = now() - interval '2 minutes' WHERE id = 'w-silent'`);
    await registry.markStopped('w-stopped');
    let text = await scrape();
    expect([sample(text, 'drover_workers', { status: 'active' }), sample(text, 'drover_workers', { status: 'stale' })]).toEqual([1, 1]);

    // A real worker registers and heartbeats: it counts as active.
    const worker = await engine.startWorker({ processors: { p: async () => ({}) }, queues: ['default'] });
    text = await scrape();
    expect(sample(text, 'drover_workers', { status: 'active' })).toBe(2);
    await worker.close();
    text = await scrape();
    expect(sample(text, 'drover_workers', { status: 'active' })).toBe(1);
  });

  test('a run older than a minute with no step queued or running is stuck; moving runs are not', async () => {
    const stuck = await engine.drover.createRun({ workflow: 'pair' });
    const moving = await engine.drover.createRun({ workflow: 'pair' });
    const young = await engine.drover.createRun({ workflow: 'pair' });
    await engine.sql.query(`UPDATE drover.runs SET created_at = now() - interval '5 minutes' WHERE id = ANY($1::uuid[])`, [[stuck.id, moving.id]]);
    expect(sample(await scrape(), 'drover_runs_stuck')).toBe(0);
    // Its queued step lost (as if its promotion never committed): nothing can move the run on.
    await engine.sql.query(`UPDATE drover.steps SET status = 'pending', queued_at = NULL WHERE run_id = ANY($1::uuid[])`, [[stuck.id, young.id]]);
    expect(sample(await scrape(), 'drover_runs_stuck')).toBe(1);

    // A run that finishes is no longer stuck.
    await engine.drover.cancelRun(stuck.id);
    expect(sample(await scrape(), 'drover_runs_stuck')).toBe(0);
  });

  test('a failing read leaves the gauges out rather than failing the scrape', async () => {
    const failing = metrics.addHealthSource(() => Promise.reject(new Error('database away')));
    removeSource();
    const text = await scrape();
    expect(text).toContain('# TYPE drover_runs_stuck gauge');
    expect(sample(text, 'drover_workers', { status: 'active' })).toBeUndefined();
    expect(sample(text, 'drover_oldest_queued_step_age_seconds')).toBeUndefined();
    failing();
  });
});

describe("a worker's metrics listener", () => {
  test('serves /metrics and /health, nothing else', async () => {
    const metrics = new Metrics({ processMetrics: false });
    metrics.stepsFinished.inc({ status: 'succeeded', queue: 'default' }, 3);
    const server = await startMetricsServer({ metrics, port: 0 });
    try {
      const text = (await http(`${server.url}/metrics`)).text;
      expect(sample(text, 'drover_steps_finished_total', { status: 'succeeded', queue: 'default' })).toBe(3);
      expect((await http(`${server.url}/health`)).body).toEqual({ status: 'ok' });
      const other = await http(`${server.url}/api/runs`);
      expect([other.status, other.body.error.code]).toEqual([404, 'not_found']);
      expect((await http(`${server.url}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await server.close();
    }
  });

  test('drover worker --metrics-port reports the steps the worker ran', async () => {
    const databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    const port = await freePort();
    const env = cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), DROVER_NAMESPACE: namespace });
    const worker = await spawnDrover(['worker', '--module', MODULE, '--metrics-port', String(port)], env, { ready: /metrics on (http:\/\/\S+)\/metrics/ });
    try {
      expect(worker.url).toBe(`http://127.0.0.1:${port}`);
      expect(sample((await http(`${worker.url}/metrics`)).text, 'drover_runs_finished_total', { status: 'failed' })).toBeUndefined();
      const { Drover } = await import('../src/drover');
      const drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
      try {
        const run = await drover.createRun({ workflow: 'doomed' });
        await drover.waitForRun(run.id, { timeoutMs: 20_000 });
      } finally {
        await drover.close();
      }
      const text = (await eventually(async () => {
        const t = (await http(`${worker.url}/metrics`)).text;
        return sample(t, 'drover_runs_finished_total', { status: 'failed' }) === 1 ? t : undefined;
      }, 10_000, 'the failed run counted'))!;
      expect(sample(text, 'drover_steps_finished_total', { status: 'failed', queue: 'default' })).toBe(1);
      expect(text).toContain('process_cpu_seconds_total');
    } finally {
      expect(await worker.stop()).toBe(0);
    }
  });

  test('drover worker refuses a bad --metrics-port with one line', async () => {
    const { runCli } = await import('./helpers/server-process');
    const result = await runCli(['worker', '--module', MODULE, '--metrics-port', 'nine'], cliEnv({}));
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/--metrics-port/);
  });
});
