import * as path from 'node:path';
import { ApiKeyStore } from '../src/auth/api-keys';
import { Drover } from '../src/drover';
import { eventually } from './helpers/engine';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, http, spawnDrover, type DroverProcess } from './helpers/server-process';
import { sample } from './helpers/prometheus';

const MODULE = path.join(__dirname, 'fixtures/api/workflows.js');

// `drover start` runs the server and a worker in one process, so its /metrics
// counts the steps that process ran (each process reports what it did).
describe('/metrics of drover start', () => {
  let databaseUrl: string;
  let drover: Drover;
  let proc: DroverProcess;
  let key: string;
  let queue: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    queue = 'default'; // the queue name the API shows, not the BullMQ name with the namespace prefix
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    key = (await drover.apiKeys.create('metrics')).key;
    proc = await spawnDrover(['start', '--module', MODULE], cliEnv({
      DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace,
    }));
  });
  afterAll(async () => {
    const code = await proc?.stop();
    await drover?.close();
    expect(code).toBe(0);
  });

  it('prints its URLs', async () => {
    await eventually(() => /worker\s+\S+ on queues default/.test(proc.stdout()), 5_000, 'the worker line');
    expect(proc.stdout()).toMatch(/Bull Board\s+http:\/\/127\.0\.0\.1:\d+\/admin\/queues/);
  });

  it('counts the steps and runs of finished runs by final status, with durations and queue waits', async () => {
    const before = await http(`${proc.url}/metrics`);
    expect(sample(before.text, 'drover_steps_finished_total', { status: 'succeeded' })).toBeUndefined();

    const auth = { authorization: `Bearer ${key}` };
    const ok = await http(`${proc.url}/api/runs`, { method: 'POST', json: { workflow: 'triple' }, headers: auth });
    const bad = await http(`${proc.url}/api/runs`, { method: 'POST', json: { workflow: 'doomed' }, headers: auth });
    expect([ok.status, bad.status]).toEqual([201, 201]);
    for (const [id, status] of [[ok.body.id, 'succeeded'], [bad.body.id, 'failed']]) {
      await eventually(async () => (await http(`${proc.url}/api/runs/${id}`, { headers: auth })).body.status === status, 20_000, `run ${status}`);
    }

    const text = (await http(`${proc.url}/metrics`)).text;
    expect(sample(text, 'drover_steps_finished_total', { status: 'succeeded', queue })).toBe(3);
    expect(sample(text, 'drover_steps_finished_total', { status: 'failed', queue })).toBe(1);
    expect(sample(text, 'drover_runs_finished_total', { status: 'succeeded' })).toBe(1);
    expect(sample(text, 'drover_runs_finished_total', { status: 'failed' })).toBe(1);
    expect(sample(text, 'drover_runs_created_total')).toBe(2);
    // Durations are observed for attempts that returned (the engine's choice); waits for every start.
    expect(sample(text, 'drover_step_duration_seconds_count', { queue })).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'drover_step_queue_wait_seconds_count', { queue })).toBe(4);
    // Job gauges are read from the queue at scrape time, one read shared for a few seconds: the four step jobs finished in BullMQ.
    const gauges = (await eventually(async () => {
      const now = (await http(`${proc.url}/metrics`)).text;
      const done = (sample(now, 'drover_queue_jobs', { queue, state: 'completed' }) ?? 0) + (sample(now, 'drover_queue_jobs', { queue, state: 'failed' }) ?? 0);
      return done === 4 ? now : undefined;
    }, 15_000, 'the job gauges to show four finished jobs'))!;
    expect(sample(gauges, 'drover_queue_jobs', { queue, state: 'waiting' })).toBe(0);
  });
});
