import { describeEachBackend, redisUrlFor } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';

// A server started before a worker registers a workflow on a new queue learns that queue
// when a run of it is created, not at its periodic (10 s) queue-list refresh.
describeEachBackend('registry read-through in a drover server', (backend) => {
  let engine: EngineHarness;
  let server: DroverProcess | undefined;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await server?.stop(); server = undefined; await engine.close(); });

  it('a run on a queue registered after the server started succeeds, and /metrics shows the queue at once', async () => {
    server = await spawnDrover(['server'], cliEnv({ DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), PORT: '0', DROVER_AUTH: 'off', DROVER_NAMESPACE: engine.namespace }));
    // (no /metrics scrape before: the gauges are shared for 5 s, which is not what this tests)
    expect((await http(`${server.url}/admin/queues/api/queues`)).text).not.toContain(`${engine.namespace}.docker`);
    await engine.startWorker({ workflows: [{ name: 'dock', steps: [{ name: 'build', processor: 'build', queue: 'docker' }] }], processors: { build: async () => ({ ok: true }) }, queues: ['docker'] });
    const started = Date.now();
    const created = await http(`${server.url}/api/runs`, { method: 'POST', json: { workflow: 'dock' } });
    expect(created.status).toBe(201);
    expect((await http(`${server.url}/admin/queues/api/queues`)).text).toContain(`${engine.namespace}.docker`);
    const metrics = await http(`${server.url}/metrics`);
    expect(metrics.text).toMatch(/drover_queue_jobs\{queue="docker",state="\w+"\}/);
    const done = await engine.drover.waitForRun(created.body.id, { timeoutMs: 5000 });
    expect(done.status).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(5000); // well within the 10 s refresh
  }, 60_000);
});
