import { Gauge } from 'prom-client';
import { registry } from '../metrics';
import type { QueueJobCounts } from '../queue-inspector';


/** A function that reads job counts at scrape time. */
export type QueueJobSource = () => Promise<QueueJobCounts>;

/** The BullMQ job states the gauge reports. */
export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed', 'waiting-children'] as const;

const sources = new Set<QueueJobSource>();
let gauge: Gauge<'queue' | 'state'> | undefined;

/**
 * Adds a source to the `drover_queue_jobs{queue,state}` gauge, which is read
 * from the queues at each scrape (not kept up to date in between).
 * @returns a function that removes the source.
 */
export function addQueueJobSource(source: QueueJobSource): () => void {
  gauge ??= new Gauge({
    name: 'drover_queue_jobs',
    help: 'Jobs in each step queue (BullMQ queue name) by BullMQ state, read at scrape time',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      const results = await Promise.allSettled([...sources].map((s) => s()));
      for (const result of results) {
        // A queue that does not answer leaves its series out rather than failing the scrape.
        if (result.status !== 'fulfilled') continue;
        for (const { queue, state, count } of result.value) this.set({ queue, state }, count);
      }
    },
  });
  sources.add(source);
  return () => {
    sources.delete(source);
  };
}
