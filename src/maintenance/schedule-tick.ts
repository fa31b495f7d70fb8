import type { Sql } from '../db/sql';
import { appendScheduleEvents } from '../audit/audit';
import { DroverError } from '../errors';
import type { RunService } from '../runs/run-service';
import { dueFireTimes, nextFireAfter, type CatchUpPolicy } from '../schedules/schedule-definition';
import type { Logger } from '../telemetry/logger';

/** Options of the schedule tick. */
export interface ScheduleTickOptions {
  /** Time between ticks. Default 250 ms (a schedule every second fires within about a quarter second). */
  intervalMs?: number;
  /** A tick at most this late is current and fires under every catch-up policy; older ones were missed (downtime). Default 2 000 ms. */
  graceMs?: number;
  /** Schedules handled per tick (each in its own short transaction). Default 50. */
  batchSize?: number;
}

/** What one tick did. */
export interface TickReport {
  /** Runs created (or found by their idempotency key, after a crash between the run and the schedule's update). */
  fired: number;
  /** Ticks skipped because the previous run was still open (`overlap: 'skip'`). */
  skipped: number;
}

/** While ticks keep failing (Postgres away), how often the failure is logged again. */
const TICK_WARN_EVERY_MS = 30_000;

/**
 * Fires due cron schedules. Postgres decides who fires a tick: each due
 * schedule row is locked `FOR UPDATE SKIP LOCKED` by one process while it
 * fires, so any number of processes may tick; the run's idempotency key
 * `schedule:<name>:<fireAt>` makes a tick repeated after a crash find its run
 * instead of making a second one. Every process running it may serve any schedule.
 */
export class ScheduleTick {
  private readonly o: Required<ScheduleTickOptions>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;
  /** Ticks failed in a row, and when the last warning was logged (an outage warns every 30 s, not every tick). */
  private failures = 0;
  private warnedAt = 0;

  constructor(private readonly deps: { sql: Sql; runs: RunService; logger: Logger }, options: ScheduleTickOptions = {}) {
    this.o = { intervalMs: options.intervalMs ?? 250, graceMs: options.graceMs ?? 2000, batchSize: options.batchSize ?? 50 };
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.running = this.tick()
        .then(() => {
          if (this.failures > 0) this.deps.logger.info({ failures: this.failures }, 'schedule tick works again');
          this.failures = 0;
        }, (err) => {
          this.failures++;
          if (this.failures === 1 || Date.now() - this.warnedAt >= TICK_WARN_EVERY_MS) {
            this.warnedAt = Date.now();
            this.deps.logger.warn({ err, failures: this.failures }, 'schedule tick failed');
          }
        })
        .finally(() => {
          if (!this.stopped) {
            this.timer = setTimeout(loop, this.o.intervalMs);
            this.timer.unref();
          }
        });
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Fires every due schedule this process can lock (others are being fired elsewhere). */
  async tick(): Promise<TickReport> {
    const report: TickReport = { fired: 0, skipped: 0 };
    for (let i = 0; i < this.o.batchSize; i++) {
      const done = await this.fireOne(report);
      if (!done) break;
    }
    return report;
  }

  /** Locks one due schedule and fires it; false when none is due (or all due ones are locked). */
  private fireOne(report: TickReport): Promise<boolean> {
    return this.deps.sql.transaction(async (client) => {
      // A lock wait would hold this connection behind another process's tick: skip, it is theirs.
      const rows = await client.query(`
        SELECT s.*, clock_timestamp() AS now,
               (SELECT r.finished_at IS NULL FROM drover.runs r WHERE r.id = s.last_run_id) AS previous_open
          FROM drover.schedules s
         WHERE NOT s.paused AND s.next_fire_at <= clock_timestamp()
         ORDER BY s.next_fire_at LIMIT 1 FOR UPDATE OF s SKIP LOCKED`);
      const row = rows[0];
      if (!row) return false;
      // Postgres' clock, not this process's: every process agrees on which ticks are due.
      const now: Date = row.now;
      const ticks = dueFireTimes(row.cron, row.timezone, row.next_fire_at, now, row.catch_up as CatchUpPolicy, this.o.graceMs);
      if (row.overlap === 'skip' && ticks.fire.length > 1) {
        // One run at a time: of several due ticks only the newest fires; the others would overlap it.
        const overlapping = ticks.fire.slice(0, -1);
        ticks.skipped.push(...overlapping);
        ticks.late = Math.max(0, ticks.late - overlapping.length);
        ticks.fire = ticks.fire.slice(-1);
      }
      const due = ticks.fire;
      const actor = `schedule:${row.name}`;
      let lastRunId: string | null = row.last_run_id;
      let lastFire: Date | null = null;
      const made: string[] = [];
      if (ticks.skipped.length) {
        report.skipped += ticks.skipped.length;
        await appendScheduleEvents(client, actor, [{ type: 'schedule.skipped', data: {
          name: row.name, reason: `missed while no process ticked (catchUp ${row.catch_up}${row.overlap === 'skip' ? ', overlap skip' : ''})`, missed: ticks.skipped.length,
          from: ticks.skipped[0].toISOString(), to: ticks.skipped[ticks.skipped.length - 1].toISOString(),
        } }]);
      }
      if (due.length && row.previous_open && row.overlap === 'skip') {
        report.skipped += due.length;
        await appendScheduleEvents(client, actor, [{ type: 'schedule.skipped', data: { name: row.name, fireAt: due[due.length - 1].toISOString(), reason: 'the previous run is still open', previousRunId: row.last_run_id } }]);
      } else if (due.length) {
        if (row.previous_open && row.overlap === 'cancel_previous') {
          await this.deps.runs.cancelRun(row.last_run_id, actor).catch((error) => {
            // It may have finished meanwhile: nothing to cancel.
            if (!(error instanceof DroverError && (error.code === 'invalid_state' || error.code === 'not_found'))) throw error;
          });
        }
        const request = (at: Date) => ({ workflow: row.workflow, input: row.input ?? {}, workspace: row.workspace, idempotencyKey: `schedule:${row.name}:${at.toISOString()}` });
        // run.created says which tick made the run, and whether it was a missed one fired late (catch-up).
        const outcomes = [
          ...(ticks.late ? await this.deps.runs.createRuns(due.slice(0, ticks.late).map(request), actor, { schedule: row.name, caughtUp: true }) : []),
          ...(due.length > ticks.late ? await this.deps.runs.createRuns(due.slice(ticks.late).map(request), actor, { schedule: row.name }) : []),
        ];
        outcomes.forEach((o, i) => {
          if (o.ok) {
            lastRunId = o.run.id;
            lastFire = due[i];
            made.unshift(o.run.id);
            report.fired++;
          } else {
            this.deps.logger.warn({ schedule: row.name, fireAt: due[i].toISOString(), code: o.error.code, reason: o.error.message }, 'a schedule tick could not start its run');
          }
        });
      }
      const next = nextFireAfter(row.cron, row.timezone, now);
      const lagMs = lastFire ? Math.max(0, now.getTime() - (lastFire as Date).getTime()) : null;
      // A pattern that never fires again stays, paused, so its history can still be read.
      await client.query(`
        UPDATE drover.schedules SET next_fire_at = COALESCE($2, next_fire_at), paused = paused OR $2 IS NULL,
               last_fire_at = COALESCE($3, last_fire_at), last_fired_at = CASE WHEN $3::timestamptz IS NULL THEN last_fired_at ELSE $5 END,
               last_run_id = $4, last_lag_ms = COALESCE($6, last_lag_ms),
               recent_run_ids = (SELECT COALESCE(array_agg(x ORDER BY n), '{}') FROM (
                 SELECT x, min(n) AS n FROM unnest($7::uuid[] || recent_run_ids) WITH ORDINALITY AS u(x, n) GROUP BY x ORDER BY min(n) LIMIT 10) AS t)
         WHERE name = $1`, [row.name, next, lastFire, lastRunId, now, lagMs === null ? null : Math.min(lagMs, 2_000_000_000), made]);
      return true;
    });
  }
}
