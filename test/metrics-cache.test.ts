import { Drover } from '../src/drover';
import { startServer, type DroverServer } from '../src/http/server';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { http } from './helpers/server-process';

/** The queue gauges of the open `/metrics` read the queue store once per period, however many scrapes arrive. */
describe('/metrics queue gauges are cached', () => {
  let drover: Drover;

  beforeAll(async () => {
    drover = await Drover.connect({ databaseUrl: await createTestDatabase(), redisUrl: testRedisUrl(), namespace: uniqueNamespace() });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
  });
  afterAll(async () => {
    await drover?.close();
  });

  it('serves a flood of scrapes with one queue read per gauge per period, and reads again after it', async () => {
    const reads = { jobs: 0, paused: 0 };
    const count = (gauge: 'jobs' | 'paused') => { reads[gauge]++; };
    // A long period here, so a loaded machine cannot make the scrapes outlast it.
    const long: DroverServer = await startServer({ drover, port: 0, queueGaugeCacheMs: 60_000, onQueueGaugeRead: count });
    try {
      const burst = await Promise.all(Array.from({ length: 40 }, () => http(`${long.url}/metrics`)));
      expect(burst.map((r) => r.status)).toEqual(Array(40).fill(200));
      for (let i = 0; i < 20; i++) await http(`${long.url}/metrics`);
      expect(reads).toEqual({ jobs: 1, paused: 1 });
      // The cached answer is the real one.
      expect(burst[0].text).toContain('drover_queue_jobs{queue="default",state="waiting"} 0');
      expect(burst[0].text).toContain('drover_queue_paused{queue="default"} 0');
    } finally {
      await long.close();
    }

    reads.jobs = reads.paused = 0;
    const short: DroverServer = await startServer({ drover, port: 0, queueGaugeCacheMs: 100, onQueueGaugeRead: count });
    try {
      await drover.createRun({ workflow: 'one' });
      expect((await http(`${short.url}/metrics`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 150));
      const later = await http(`${short.url}/metrics`);
      expect(later.text).toContain('drover_queue_jobs{queue="default",state="waiting"} 1');
      expect(reads).toEqual({ jobs: 2, paused: 2 });
    } finally {
      await short.close();
    }
  });
});
