import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Router } from 'express';
import type { Drover } from '../drover';
import type { Logger } from '../telemetry/logger';

/** Options of the Bull Board mount. */
export interface BullBoardOptions {
  drover: Drover;
  /** URL path Bull Board is served under. Default `/admin/queues`. */
  basePath?: string;
  /** How often the queue list is read again from the workflow registry. Default 10 000 ms. */
  refreshIntervalMs?: number;
  logger: Logger;
}

/** Bull Board over every step queue, kept in step with the registered workflows. */
export interface BullBoard {
  router: Router;
  /** The drover queue names shown now. */
  queues(): string[];
  /** Reads the workflow registry and shows any new queue. */
  refresh(): Promise<string[]>;
  /** Stops the periodic refresh. */
  close(): void;
}

/** The step queues of the registered workflows, plus `default`, sorted. */
export async function stepQueueNames(drover: Drover): Promise<string[]> {
  const workflows = await drover.listWorkflows();
  return [...new Set(['default', ...workflows.flatMap((w) => w.steps.map((s) => s.queue))])].sort();
}

/**
 * Mounts Bull Board (read-write) over the BullMQ queues of either backend.
 * New workflows registered by workers bring new queues; a timer picks them up.
 */
export function createBullBoardRouter(options: BullBoardOptions): BullBoard {
  const { drover, logger } = options;
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(options.basePath ?? '/admin/queues');
  let shown: string[] = ['default'];
  const adapters = (names: string[]) => names.map((name) => new BullMQAdapter(drover.queues.boardQueue(name), { readOnlyMode: false }));
  const board = createBullBoard({ queues: adapters(shown), serverAdapter, options: { uiConfig: { boardTitle: 'drover' } } });

  let closed = false;
  const refresh = async (): Promise<string[]> => {
    if (closed) return shown;
    const names = await stepQueueNames(drover);
    if (names.join('\n') !== shown.join('\n')) {
      board.replaceQueues(adapters(names));
      shown = names;
    }
    return shown;
  };
  const timer = setInterval(() => {
    refresh().catch((err) => logger.warn({ err }, 'could not refresh the Bull Board queue list'));
  }, options.refreshIntervalMs ?? 10_000);
  timer.unref();

  return {
    router: serverAdapter.getRouter() as Router,
    queues: () => shown,
    refresh,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
