import { Cluster } from 'ioredis';
import { Drover } from '../src/drover';
import { loadConfig } from '../src/config';
import { parseRedisTarget } from '../src/queue/redis-target';
import type { DroverWorker } from '../src/worker/worker';
import { RedisCluster } from './harness/redis-cluster';
import { FAST_WORKER, eventually } from './helpers/engine';
import { createTestDatabase, uniqueNamespace } from './helpers/env';
import { sleep } from './helpers/fixtures';

// A real 3-master, 3-replica Redis Cluster on loopback, made by the harness for this file.
jest.setTimeout(120_000);

const chain = {
  name: 'chain',
  steps: [
    { name: 'a', processor: 'work' },
    { name: 'b', processor: 'work', dependsOn: ['a'] },
    { name: 'c', processor: 'work', dependsOn: ['a'] },
    { name: 'd', processor: 'work', dependsOn: ['b', 'c'], attempts: 5, backoff: { type: 'fixed' as const, delayMs: 100 } },
  ],
};

describe('REDIS_URL=redis+cluster://…', () => {
  it('is parsed into seed nodes and credentials, and bad ones get one clear line', () => {
    expect(parseRedisTarget('redis+cluster://u:p%40ss@10.0.0.1:7000,redis-b:7001/')).toEqual({
      kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: 'redis-b', port: 7001 }], username: 'u', password: 'p@ss', tls: false,
    });
    expect(parseRedisTarget('rediss+cluster://[::1]:7000')).toMatchObject({ kind: 'cluster', nodes: [{ host: '::1', port: 7000 }], tls: true });
    expect(loadConfig({ REDIS_URL: 'redis+cluster://a:7000,b:7001' }).redisUrl).toBe('redis+cluster://a:7000,b:7001');
    expect(() => loadConfig({ REDIS_URL: 'redis+cluster://a:7000,b' })).toThrow('REDIS_URL: a Redis Cluster seed node must be host:port (got "b")');
    expect(() => loadConfig({ REDIS_URL: 'redis+cluster://' })).toThrow('REDIS_URL: a Redis Cluster URL needs at least one seed node host:port');
    expect(() => loadConfig({ REDIS_URL: 'redis+cluster://:secret@a:99999' })).toThrow(/seed node must be host:port \(got "a:99999"\)$/);
  });
});

describe('drover on a Redis Cluster (3 masters, 3 replicas)', () => {
  const cluster = new RedisCluster();
  let drover: Drover;
  let namespace: string;
  const workers: DroverWorker[] = [];
  const executions = new Map<string, number>();
  const processors = {
    work: async (ctx: { run: { id: string }; step: { name: string } }) => {
      const key = `${ctx.run.id}/${ctx.step.name}`;
      executions.set(key, (executions.get(key) ?? 0) + 1);
      await sleep(20);
      return { step: ctx.step.name };
    },
  };

  beforeAll(async () => {
    await cluster.start();
    namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl: await createTestDatabase(), redisUrl: cluster.url, namespace });
    for (let i = 0; i < 2; i++) {
      // The reconciler is on: writes the dead master had not yet copied to its replica are lost, and Postgres has them.
      const worker = drover.createWorker({
        ...FAST_WORKER, workflows: [chain], processors, concurrency: 4, lockDurationMs: 5000, stalledIntervalMs: 2000,
        reconciler: { intervalMs: 1000, queuedGraceMs: 2000, heartbeatTimeoutMs: 4000 },
      });
      workers.push(worker);
      await worker.run();
    }
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await drover?.close();
    await cluster.stop();
  });

  it('keeps every key of a queue in one slot (the queue name is a hash tag) and runs a DAG through it', async () => {
    expect(drover.queues.bullName('default')).toBe(`{${namespace}.default}`);
    const run = await drover.waitForRun((await drover.createRun({ workflow: 'chain', input: {} })).id, { timeoutMs: 30_000 });
    expect(run.status).toBe('succeeded');
    expect(run.output).toEqual({ d: { step: 'd' } });

    // Every node is asked for the queue's keys: they all sit on the one master of the tag's slot (and its replica).
    const client = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0] }]);
    try {
      await client.ping(); // the client knows the nodes once connected
      const holders: number[] = [];
      for (const node of client.nodes('master')) {
        const keys = await node.keys(`bull:{${namespace}.default}:*`);
        if (keys.length) holders.push(node.options.port!);
      }
      expect(holders).toEqual([cluster.masterOf(`{${namespace}.default}`)]);
    } finally {
      client.disconnect();
    }
  });

  it('finishes every run exactly once when the master holding the queue is killed and its replica promoted', async () => {
    const ids = await Promise.all(Array.from({ length: 30 }, () => drover.createRun({ workflow: 'chain', input: {} }).then((r) => r.id)));
    await eventually(async () => (await drover.listRuns({ status: 'succeeded', limit: 100 })).items.length >= 5, 20_000, 'some runs to finish');
    const master = cluster.masterOf(`{${namespace}.default}`);
    const { promoted } = await cluster.killMaster(master);
    expect(promoted).not.toBe(master);
    // Runs created after the failover go to the promoted master.
    ids.push(...await Promise.all(Array.from({ length: 10 }, () => drover.createRun({ workflow: 'chain', input: {} }).then((r) => r.id))));

    const runs = await Promise.all(ids.map((id) => drover.waitForRun(id, { timeoutMs: 60_000 })));
    expect(runs.map((r) => r.status)).toEqual(ids.map(() => 'succeeded'));
    expect(cluster.masterOf(`{${namespace}.default}`)).toBe(promoted);
    // Postgres decides: each step succeeded once, whatever ran twice around the failover.
    for (const run of runs) {
      const succeeded = (await drover.getAudit(run.id)).items.filter((e) => e.type === 'step.succeeded').length;
      expect(succeeded).toBe(4);
      for (const step of run.steps) expect(executions.get(`${run.id}/${step.name}`)).toBeGreaterThanOrEqual(1);
    }
  });
});
