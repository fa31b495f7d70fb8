import type { JobType, Queue } from 'bullmq';
import { jobIdOf } from './dispatcher';
import type { QueueBackend, QueueBackendKind, StepJobData } from './queue-backend';

/** Where drover mounts Bull Board. */
export const BULL_BOARD_PATH = '/admin/queues';

/** Job counts of one queue by BullMQ state, labelled with the drover queue name (`default`). */
export type QueueJobCounts = Array<{ queue: string; state: string; count: number }>;

/**
 * What the app shell (HTTP API, Bull Board, metrics, CLI) may know of the
 * queues: which backend carries them, their job counts, and the BullMQ queue
 * objects Bull Board reads. Transitions never go through here: jobs are
 * added and removed by the dispatcher only.
 */
export class QueueInspector {
  constructor(private readonly backend: QueueBackend) {}

  /** `redis` or `postgres` (BullMQ's PostgreSQL backend). */
  get kind(): QueueBackendKind {
    return this.backend.kind;
  }

  /** The BullMQ name of a drover queue (namespace prefix included). */
  bullName(queue: string): string {
    return this.backend.bullName(queue);
  }

  /** The drover queue name of a BullMQ queue name (undefined when not one of this namespace). */
  droverName(bullName: string): string | undefined {
    return this.backend.droverName(bullName);
  }

  /**
   * The Bull Board page of a step's job, `/admin/queues/queue/<bullName>/<jobId>`
   * (the job of that generation: a resumed step has a new one).
   */
  jobPath(queue: string, stepId: string, generation: number): string {
    return `${BULL_BOARD_PATH}/queue/${encodeURIComponent(this.bullName(queue))}/${encodeURIComponent(jobIdOf(stepId, generation))}`;
  }

  /** Which of the drover queues `queues` are paused in BullMQ (workers take no job from them). */
  async pausedQueues(queues: readonly string[]): Promise<string[]> {
    const paused = await Promise.all(queues.map((q) => this.backend.queue(q).isPaused()));
    return queues.filter((_, i) => paused[i]);
  }

  /** Counts the jobs of a drover queue in each of `states`. */
  async jobCounts(queue: string, states: readonly JobType[]): Promise<QueueJobCounts> {
    const bullQueue = this.backend.queue(queue);
    const byState = await bullQueue.getJobCounts(...states);
    return Object.entries(byState).map(([state, count]) => ({ queue, state, count }));
  }

  /** The BullMQ queue of a drover queue, for Bull Board's adapter. */
  boardQueue(queue: string): Queue<StepJobData> {
    return this.backend.queue(queue);
  }

  /** Opens the queue store's connection now, so an unreachable Redis is reported at start, not at the first request. */
  connect(): void {
    this.backend.connect();
  }

  /** Resolves when the queue store answers. */
  ping(): Promise<void> {
    return this.backend.ping();
  }
}
