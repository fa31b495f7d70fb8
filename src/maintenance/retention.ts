import { Client, type ClientBase } from 'pg';
import type { Sql } from '../db/sql';
import type { Logger } from '../telemetry/logger';
import type { Metrics } from '../telemetry/metrics';

/** Options of retention. */
export interface RetentionOptions {
  /** Finished runs older than this many days are deleted (by their finish time); 0 keeps everything. Default 30 (`DROVER_RETENTION_DAYS`). */
  retentionDays?: number;
  /** Runs deleted per transaction (with their steps and logs). Default 200. */
  batchSize?: number;
  /** Most batches per pass, so one pass never runs for long. Default 50. */
  maxBatches?: number;
  /** Stopped or gone workers are removed from the registry this long after they stopped. Default one day. */
  workerRetentionMs?: number;
  /** How many months of audit partitions are kept ready ahead of the current one. Default 2. */
  monthsAhead?: number;
  /** Lock wait allowed to detach a partition before the pass gives up on it (tries again next pass). Default 2 000 ms. */
  lockTimeoutMs?: number;
}

/** What one pass deleted. */
export interface RetentionReport {
  /** False when another process held the retention lock. */
  ran: boolean;
  runs: number;
  steps: number;
  stepLogs: number;
  /** Audit events removed with their month's partition. */
  auditEvents: number;
  /** The audit partitions dropped (their table names). */
  partitionsDropped: string[];
  /** Audit partitions created ahead of time. */
  partitionsCreated: number;
  workers: number;
}

// Arbitrary constant: one retention pass at a time across every process.
const RETENTION_LOCK_KEY = 7_312_004_513;
const DAY_MS = 86_400_000;

/** What retention works with. */
export interface RetentionDeps {
  sql: Sql;
  logger: Logger;
  metrics: Metrics;
  /**
   * Postgres bypassing a transaction pooler (`DATABASE_DIRECT_URL`): the pass's
   * session lock and the partition DDL (a `SET lock_timeout` then a
   * `DETACH … CONCURRENTLY`, which refuses a transaction block) need one
   * session. Unset: a connection of `sql`'s pool, which then must not be pooled
   * by transaction.
   */
  directUrl?: string;
}

/**
 * Deletes old history (CONTRACT §9). Finished runs whose `finished_at` is past
 * the horizon go with their steps and step logs, `batchSize` runs per short
 * transaction: the runs are locked first (`FOR UPDATE SKIP LOCKED`, the lock
 * order of every transition: the run row, then its steps), so a run some
 * transition holds is left for the next pass, and a run that was resumed
 * meanwhile no longer matches. Audit events are never deleted row by row (the
 * table is append-only): a month's partition is detached and dropped once the
 * whole month is past the horizon and no run it has events of is still kept.
 * Audit partitions for the coming months are created ahead of time. Stopped
 * and gone workers leave the registry a day after they stopped.
 */
export class Retention {
  private readonly o: Required<RetentionOptions>;

  constructor(private readonly deps: RetentionDeps, options: RetentionOptions = {}) {
    this.o = {
      retentionDays: options.retentionDays ?? 30,
      batchSize: options.batchSize ?? 200,
      maxBatches: options.maxBatches ?? 50,
      workerRetentionMs: options.workerRetentionMs ?? DAY_MS,
      monthsAhead: options.monthsAhead ?? 2,
      lockTimeoutMs: options.lockTimeoutMs ?? 2000,
    };
    if (!Number.isInteger(this.o.retentionDays) || this.o.retentionDays < 0) throw new TypeError(`retentionDays must be a whole number of days, 0 or more (got ${options.retentionDays})`);
  }

  /** The retention horizon in days (0: everything is kept). */
  get retentionDays(): number {
    return this.o.retentionDays;
  }

  /** One pass, if no other process is in one. */
  async prune(): Promise<RetentionReport> {
    const report: RetentionReport = { ran: false, runs: 0, steps: 0, stepLogs: 0, auditEvents: 0, partitionsDropped: [], partitionsCreated: 0, workers: 0 };
    // A session of its own, held for the pass (its batches are separate transactions): the lock, and the partition DDL.
    const session = await this.openSession();
    let broken = false;
    const onError = () => { broken = true; };
    session.client.on('error', onError);
    try {
      const { rows } = await session.client.query('SELECT pg_try_advisory_lock($1) AS locked', [RETENTION_LOCK_KEY]);
      if (!rows[0].locked) return report;
      report.ran = true;
      try {
        report.partitionsCreated = await this.createPartitionsAhead();
        if (this.o.retentionDays > 0) {
          await this.deleteRuns(report);
          await this.dropAuditPartitions(report, session.client);
        }
        report.workers = await this.deleteOldWorkers();
      } finally {
        await session.client.query('SELECT pg_advisory_unlock($1)', [RETENTION_LOCK_KEY]).catch(() => { broken = true; });
      }
      this.count(report);
      const total = report.runs + report.auditEvents + report.workers;
      if (total) this.deps.logger.info({ ...report }, 'retention deleted old history');
      return report;
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      session.client.off('error', onError);
      await session.close(broken);
    }
  }

  private async openSession(): Promise<{ client: ClientBase; close(broken: boolean): Promise<void> }> {
    if (!this.deps.directUrl) {
      const client = await this.deps.sql.pool.connect();
      return { client, close: async (broken) => client.release(broken) };
    }
    const client = new Client({ connectionString: this.deps.directUrl, application_name: 'drover-retention', connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    return { client, close: () => client.end().catch(() => undefined) };
  }

  /** Creates this month's and the next months' audit partitions (a no-op when they exist). */
  async createPartitionsAhead(): Promise<number> {
    const rows = await this.deps.sql.query(`
      SELECT drover.ensure_audit_partition(m::date) AS created
        FROM generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                             date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => $1), interval '1 month') AS m`, [this.o.monthsAhead]);
    return rows.filter((r) => r.created).length;
  }

  private async deleteRuns(report: RetentionReport): Promise<void> {
    for (let batch = 0; batch < this.o.maxBatches; batch++) {
      const deleted = await this.deps.sql.transaction(async (tx) => {
        // Locked in id order (the one lock order); a run in a transition right now is skipped, not waited for.
        const runs = await tx.query(`
          SELECT id FROM drover.runs
           WHERE finished_at IS NOT NULL AND finished_at < now() - make_interval(days => $1) AND status IN ('succeeded', 'failed', 'cancelled')
           ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`, [this.o.retentionDays, this.o.batchSize]);
        if (runs.length === 0) return 0;
        const ids = runs.map((r) => r.id);
        const [logs] = await tx.query(`WITH d AS (DELETE FROM drover.step_logs WHERE run_id = ANY ($1::uuid[]) RETURNING 1) SELECT count(*)::int AS n FROM d`, [ids]);
        const [steps] = await tx.query(`WITH d AS (DELETE FROM drover.steps WHERE id IN (SELECT id FROM drover.steps WHERE run_id = ANY ($1::uuid[]) ORDER BY id FOR UPDATE) RETURNING 1) SELECT count(*)::int AS n FROM d`, [ids]);
        await tx.query(`DELETE FROM drover.runs WHERE id = ANY ($1::uuid[])`, [ids]);
        report.stepLogs += logs.n;
        report.steps += steps.n;
        report.runs += ids.length;
        return ids.length;
      });
      if (deleted < this.o.batchSize) return;
    }
  }

  /**
   * Audit partitions whose month ended before the horizon and that hold no
   * event of a run still kept: detached (CONCURRENTLY, so inserts into the
   * current month never wait) and dropped.
   */
  private async dropAuditPartitions(report: RetentionReport, session: ClientBase): Promise<void> {
    const parts = await this.deps.sql.query(`
      SELECT c.relname AS name, i.inhdetachpending AS pending, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'drover.audit_events'::regclass ORDER BY c.relname`);
    for (const part of parts) {
      const match = /TO \('([^']+)'\)/.exec(part.bound);
      if (!match) continue;
      const [old] = await this.deps.sql.query(`SELECT $1::timestamptz <= now() - make_interval(days => $2) AS past`, [match[1], this.o.retentionDays]);
      if (!old.past) continue;
      const table = `drover."${part.name.replace(/"/g, '""')}"`;
      const [kept] = await this.deps.sql.query(`
        SELECT EXISTS (SELECT 1 FROM ${table} e JOIN drover.runs r ON r.id = e.run_id) AS kept, (SELECT count(*)::int FROM ${table}) AS n`);
      if (kept.kept) continue;
      try {
        await session.query(`SET lock_timeout = ${Math.max(1, Math.floor(this.o.lockTimeoutMs))}`);
        // Not in a transaction block (CONCURRENTLY refuses one); a detach cut short is finished next pass.
        await session.query(`ALTER TABLE drover.audit_events DETACH PARTITION ${table} ${part.pending ? 'FINALIZE' : 'CONCURRENTLY'}`);
        await session.query(`DROP TABLE ${table}`);
        report.partitionsDropped.push(part.name);
        report.auditEvents += kept.n;
      } catch (error) {
        this.deps.logger.warn({ partition: part.name, reason: (error as Error).message }, 'could not drop an old audit partition; trying again next pass');
      } finally {
        await session.query('RESET lock_timeout').catch(() => undefined);
      }
    }
  }

  private async deleteOldWorkers(): Promise<number> {
    const rows = await this.deps.sql.query(`
      DELETE FROM drover.workers WHERE status <> 'active' AND stopped_at < now() - make_interval(secs => $1::double precision / 1000) RETURNING id`,
    [this.o.workerRetentionMs]);
    return rows.length;
  }

  private count(report: RetentionReport): void {
    const m = this.deps.metrics.retentionDeleted;
    if (report.runs) m.inc({ kind: 'runs' }, report.runs);
    if (report.steps) m.inc({ kind: 'steps' }, report.steps);
    if (report.stepLogs) m.inc({ kind: 'step_logs' }, report.stepLogs);
    if (report.auditEvents) m.inc({ kind: 'audit_events' }, report.auditEvents);
    if (report.workers) m.inc({ kind: 'workers' }, report.workers);
  }
}
