import * as os from 'node:os';
import type { Sql } from '../db/sql';
import type { WorkerView } from '../types';
import { toWorkerView } from '../runs/views';

/** What a worker registers about itself. */
export interface WorkerInfo {
  id: string;
  queues: string[];
  concurrency: number;
  version: string;
  /** Names of the processors it has. */
  processors: string[];
}

/**
 * The registry of worker processes: each registers at start, heartbeats, and
 * is marked `stopped` when it closes or `gone` when its heartbeat expires.
 */
export class WorkerRegistry {
  constructor(private readonly sql: Sql) {}

  /** Registers a worker; a reused id is replaced by what this process says about itself. */
  async register(info: WorkerInfo): Promise<void> {
    await this.sql.query(`
      INSERT INTO drover.workers (id, hostname, pid, queues, concurrency, version, processors, status)
      VALUES ($1, $2, $3, $4, $5, $6, $7, 'active')
      ON CONFLICT (id) DO UPDATE SET
        hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency,
        version = EXCLUDED.version, processors = EXCLUDED.processors, status = 'active',
        started_at = now(), last_heartbeat_at = now(), stopped_at = NULL`,
    [info.id, os.hostname(), process.pid, info.queues, info.concurrency, info.version, info.processors]);
  }

  /** Refreshes the heartbeat (and revives a worker wrongly marked gone). */
  async heartbeat(id: string): Promise<void> {
    await this.sql.query(`UPDATE drover.workers SET last_heartbeat_at = now(), status = 'active' WHERE id = $1 AND status <> 'stopped'`, [id]);
  }

  async markStopped(id: string): Promise<void> {
    await this.sql.query(`UPDATE drover.workers SET status = 'stopped', stopped_at = now() WHERE id = $1`, [id]);
  }

  /** Marks active workers whose heartbeat is older than `timeoutMs` as gone; returns their ids. */
  async markExpiredGone(timeoutMs: number): Promise<string[]> {
    const rows = await this.sql.query(`
      UPDATE drover.workers SET status = 'gone', stopped_at = now()
       WHERE status = 'active' AND last_heartbeat_at < now() - make_interval(secs => $1::double precision / 1000)
      RETURNING id`, [timeoutMs]);
    return rows.map((r) => r.id);
  }

  /** Workers, active first, newest first. */
  async list(): Promise<WorkerView[]> {
    const rows = await this.sql.query(`
      SELECT * FROM drover.workers ORDER BY (status = 'active') DESC, started_at DESC LIMIT 500`);
    return rows.map(toWorkerView);
  }
}
