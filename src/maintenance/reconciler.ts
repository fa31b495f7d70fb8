import type { Logger } from 'pino';
import type { PoolClient } from 'pg';
import type { Sql } from '../db/sql';
import { jobIdOf, type Dispatcher } from '../queue/dispatcher';
import type { Metrics } from '../telemetry/metrics';
import { appendEvents } from '../audit/audit';
import type { QueueBackend } from '../queue/queue-backend';
import { WorkerRegistry } from '../worker/worker-registry';
import { toReadyStep, type ReadyStep } from '../steps/ready-step';
import { finishRuns } from '../runs/run-store';
import { isUuid } from '../json';
import type { StepStore } from '../steps/step-store';
import { WaitRepairs } from './wait-repairs';

/** Options of the reconciler. */
export interface ReconcilerOptions {
  /** Time between passes. Default 10 000 ms. */
  intervalMs?: number;
  /** A `queued` step is checked against the queue once it has waited this long. Default 15 000 ms. */
  queuedGraceMs?: number;
  /** A worker whose heartbeat is older than this is gone. Default 30 000 ms. */
  heartbeatTimeoutMs?: number;
  /**
   * Rows (or queue jobs) examined per pass and kind. Each kind keeps its place
   * between passes and wraps to the start after the last page, so every live
   * row is examined at least once every ceil(N / batchSize) + 1 passes,
   * however many there are. Default 1 000.
   */
  batchSize?: number;
}

/** What one pass repaired. */
export interface ReconcileReport {
  /** False when another process held the reconciler lock. */
  ran: boolean;
  workersGone: number;
  requeued: number;
  reenqueued: number;
  runsFinished: number;
  jobsRemoved: number;
  /** Repairs of waits and dynamic graphs (src/maintenance/wait-repairs.ts). */
  waitRepairs: number;
  /** Runs and steps given their place under a concurrency key (waiters whose place was free). */
  flowPromoted?: number;
}

// Arbitrary constant: one reconciler pass at a time across every process.
const RECONCILER_LOCK_KEY = 7_312_004_512;
/** How long the lock's transaction may sit idle (a pass runs its work on other connections meanwhile). */
const RECONCILER_LOCK_IDLE_MS = 10_000;
const ACTOR = 'reconciler';
/** A queued step that waits on a concurrency key (its own or its run's) has no job on purpose. */
const FLOW_WAITING = `EXISTS (SELECT 1 FROM drover.flow_entries f WHERE f.subject IN (s.id, s.run_id) AND f.state = 'waiting')`;
const LIVE_JOB_STATES = new Set(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);
/** Job lists of the stale-job scan, each paged on its own (BullMQ applies a range to each list it reads). */
const WAITING_JOB_TYPES = ['waiting', 'delayed', 'prioritized'] as const;

/**
 * Where a keyset scan stands: after the row with this sort key (a timestamp,
 * as Postgres text so no microseconds are lost) and id. The start is before
 * every row.
 */
interface Keyset { at: string; id: string }
const START: Keyset = { at: '-infinity', id: '00000000-0000-0000-0000-000000000000' };

/** The next keyset after a page: its last row, or the start again once a page comes back short (the end). */
function nextKeyset(rows: Array<{ key_at: string; id: string }>, batchSize: number): Keyset {
  const last = rows[rows.length - 1];
  return rows.length < batchSize || !last ? START : { at: last.key_at, id: last.id };
}

/**
 * Repairs drift between Postgres (the truth) and the queue (disposable):
 * queued steps without a live job are enqueued again (a crash between commit
 * and enqueue, Redis restarted empty, evicted keys); running steps of gone
 * workers whose job is lost are re-queued; runs whose steps are all terminal
 * are finished; jobs of terminal steps are removed. Every repair is an audit
 * event with actor `reconciler` and a metric.
 */
export class Reconciler {
  private readonly o: Required<ReconcilerOptions>;
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;
  // Each scan's place, kept across passes so a backlog of rows that need nothing cannot hide the rest.
  private runningAfter = START;
  private queuedAfter = START;
  private runsAfter = START;
  private readonly jobOffsets = new Map<string, number>();
  private readonly waits: WaitRepairs;

  constructor(
    private readonly deps: { sql: Sql; backend: QueueBackend; store: StepStore; dispatcher: Dispatcher; logger: Logger; metrics: Metrics; queues: string[] },
    options: ReconcilerOptions = {},
  ) {
    this.o = {
      intervalMs: options.intervalMs ?? 10_000,
      queuedGraceMs: options.queuedGraceMs ?? 15_000,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 30_000,
      batchSize: options.batchSize ?? 1000,
    };
    this.waits = new WaitRepairs(deps, this.o.batchSize, this.o.queuedGraceMs);
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.reconcile()
        .catch((err) => this.deps.logger.warn({ err }, 'reconciler pass failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.o.intervalMs);
          this.timer?.unref();
        });
    };
    this.timer = setTimeout(tick, Math.min(this.o.intervalMs, 1000));
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One pass, if no other process is in one. */
  async reconcile(): Promise<ReconcileReport> {
    const report: ReconcileReport = { ran: false, workersGone: 0, requeued: 0, reenqueued: 0, runsFinished: 0, jobsRemoved: 0, waitRepairs: 0 };
    const client: PoolClient = await this.deps.sql.pool.connect();
    let broken = false;
    const onError = () => { broken = true; };
    client.on('error', onError);
    try {
      // A transaction-scoped advisory lock: released at commit, or when the connection dies. A holder
      // cut off by a network partition looks alive to Postgres (no reset arrives), so its idle
      // transaction is ended after RECONCILER_LOCK_IDLE_MS and another process's pass can run.
      await client.query(`BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${RECONCILER_LOCK_IDLE_MS}`);
      const { rows } = await client.query('SELECT pg_try_advisory_xact_lock($1) AS locked', [RECONCILER_LOCK_KEY]);
      if (!rows[0].locked) return report;
      report.ran = true;
      await this.markGoneWorkers(report);
      await this.requeueLostRunning(report);
      await this.reenqueueMissingJobs(report);
      await this.finishSettledRuns(report);
      if (this.deps.dispatcher.flow) {
        report.flowPromoted = await this.deps.dispatcher.flow.reconcile(this.o.batchSize);
        if (report.flowPromoted) this.deps.metrics.reconcilerRepairs.inc({ kind: 'flow_promoted' }, report.flowPromoted);
      }
      await this.removeJobsOfTerminalSteps(report);
      report.waitRepairs = await this.waits.run();
      return report;
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      await client.query('COMMIT').catch(() => { broken = true; });
      client.off('error', onError);
      client.release(broken);
      const repairs = report.requeued + report.reenqueued + report.runsFinished + report.jobsRemoved + report.workersGone + report.waitRepairs;
      if (repairs) this.deps.logger.info({ ...report }, 'reconciler repaired drift');
    }
  }

  private async markGoneWorkers(report: ReconcileReport): Promise<void> {
    const rows = await new WorkerRegistry(this.deps.sql).markExpiredGone(this.o.heartbeatTimeoutMs);
    report.workersGone = rows.length;
    if (rows.length) this.deps.metrics.reconcilerRepairs.inc({ kind: 'worker_gone' }, rows.length);
  }

  /**
   * Running steps that nobody will finish: held by a worker that is no longer
   * active while their job is not active either, or whose job BullMQ already
   * finished (completed or failed) though the row still says running — a
   * result that was dropped. A live worker whose job merely vanished (Redis
   * flushed) may still be running the processor, so that case is left alone.
   */
  private async requeueLostRunning(report: ReconcileReport): Promise<void> {
    const rows = await this.deps.sql.query(`
      SELECT s.id, s.queue, s.generation, s.lease, s.started_at::text AS key_at,
             EXISTS (SELECT 1 FROM drover.workers w WHERE w.id = s.worker_id AND w.status = 'active') AS worker_alive
        FROM drover.steps s
       WHERE s.finished_at IS NULL AND s.status = 'running' AND s.started_at < now() - make_interval(secs => $2::double precision / 1000)
         AND (s.started_at, s.id) > ($3::timestamptz, $4::uuid)
       ORDER BY s.started_at, s.id LIMIT $1`, [this.o.batchSize, this.o.queuedGraceMs, this.runningAfter.at, this.runningAfter.id]);
    this.runningAfter = nextKeyset(rows, this.o.batchSize);
    const ready: ReadyStep[] = [];
    for (const row of rows) {
      const jobId = jobIdOf(row.id, row.generation);
      const state = await this.jobState(row.queue, jobId);
      if (state === 'active') continue; // BullMQ's stall detection will hand it to a live worker
      const finishedJob = state === 'completed' || state === 'failed';
      if (row.worker_alive && !finishedJob) continue;
      if (state !== 'missing' && !LIVE_JOB_STATES.has(state)) await this.removeJob(row.queue, jobId);
      const reason = row.worker_alive ? `job ${state} but the step still running` : `worker gone; job ${state}`;
      const step = await this.deps.store.requeueLostStep(row.id, row.lease, ACTOR, reason);
      if (step) ready.push(step);
    }
    if (ready.length) {
      await this.deps.dispatcher.enqueue(ready);
      report.requeued = ready.length;
      this.deps.metrics.reconcilerRepairs.inc({ kind: 'running_requeued' }, ready.length);
    }
  }

  /** Queued steps whose job is missing, or finished in the queue while the row still says queued. */
  private async reenqueueMissingJobs(report: ReconcileReport): Promise<void> {
    const rows = await this.deps.sql.query(`
      SELECT s.id, s.run_id, s.name, s.processor, s.queue, s.generation, s.attempt, s.max_attempts, s.options, r.priority AS run_priority, r.workflow,
             r.delay_ms, cardinality(s.depends_on) = 0 AS root,
             extract(epoch FROM now() - s.queued_at) * 1000 AS waited_ms, s.queued_at::text AS key_at,
             COALESCE(extract(epoch FROM s.available_at - now()) * 1000, 0) AS retry_wait_ms
        FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id
       WHERE s.finished_at IS NULL AND s.status = 'queued' AND s.queued_at < now() - make_interval(secs => $1::double precision / 1000)
         AND s.queued_at >= $3::timestamptz AND (s.queued_at, s.id) > ($3::timestamptz, $4::uuid)
         AND NOT (s.options ? 'flow' AND ${FLOW_WAITING})
       ORDER BY s.queued_at, s.id LIMIT $2`, [this.o.queuedGraceMs, this.o.batchSize, this.queuedAfter.at, this.queuedAfter.id]);
    this.queuedAfter = nextKeyset(rows, this.o.batchSize);
    const missing: ReadyStep[] = [];
    await Promise.all(rows.map(async (row) => {
      const jobId = jobIdOf(row.id, row.generation);
      const state = await this.jobState(row.queue, jobId);
      if (LIVE_JOB_STATES.has(state)) return;
      if (state !== 'missing') await this.removeJob(row.queue, jobId);
      // The lost job may have been delayed (run delay, step delay, retry backoff): the new one waits what is left.
      missing.push({ ...toReadyStep(row), options: { ...row.options, delayMs: 0 }, extraDelayMs: remainingDelayMs(row) });
    }));
    if (missing.length === 0) return;
    // Audit first: the row is the truth; a crash before enqueue is found by the next pass.
    await appendEvents(this.deps.sql, ACTOR, missing.map((s) => ({
      type: 'step.reenqueued', runId: s.runId, stepId: s.id, data: { reason: 'queued step had no live job' },
    })));
    await this.deps.dispatcher.enqueue(missing);
    report.reenqueued = missing.length;
    this.deps.metrics.reconcilerRepairs.inc({ kind: 'queued_reenqueued' }, missing.length);
  }

  /** Runs whose steps are all terminal but which did not finish (a crash between the two statements). */
  private async finishSettledRuns(report: ReconcileReport): Promise<void> {
    const rows = await this.deps.sql.query(`
      SELECT id, created_at::text AS key_at FROM drover.runs
       WHERE finished_at IS NULL AND open_steps = 0 AND (created_at, id) > ($2::timestamptz, $3::uuid)
       ORDER BY created_at, id LIMIT $1`, [this.o.batchSize, this.runsAfter.at, this.runsAfter.id]);
    this.runsAfter = nextKeyset(rows, this.o.batchSize);
    // One statement for the page (finishRuns locks the runs in id order).
    const finished = rows.length ? await finishRuns(this.deps.sql, rows.map((r) => r.id), ACTOR) : new Map<string, 'succeeded' | 'failed'>();
    for (const status of finished.values()) this.deps.metrics.runsFinished.inc({ status });
    report.runsFinished = finished.size;
    if (report.runsFinished) this.deps.metrics.reconcilerRepairs.inc({ kind: 'run_finished' }, report.runsFinished);
  }

  /**
   * Waiting or delayed jobs whose step is already terminal (or of an older
   * generation). Each job list is read a page at a time from where the last
   * pass stopped (an offset: the lists have no key to seek by), so a long list
   * of live delayed jobs cannot hide a stale one behind it.
   */
  private async removeJobsOfTerminalSteps(report: ReconcileReport): Promise<void> {
    for (const queue of this.deps.queues) {
      for (const type of WAITING_JOB_TYPES) {
        const place = `${queue}:${type}`;
        const offset = this.jobOffsets.get(place) ?? 0;
        const jobs = await this.deps.backend.queue(queue).getJobs([type], offset, offset + this.o.batchSize - 1);
        let removed = 0;
        // Job data is not trusted: a job naming no real step id is not ours to keep (and would fail the uuid cast).
        const candidates = jobs.filter((j) => typeof j?.data?.stepId === 'string' && isUuid(j.data.stepId));
        for (const job of jobs) {
          if (!job?.id || candidates.includes(job)) continue;
          await this.removeJob(queue, job.id);
          removed++;
        }
        if (candidates.length) {
          const live = await this.deps.sql.query(`
            SELECT id, generation FROM drover.steps WHERE id = ANY ($1::uuid[]) AND status IN ('queued', 'running')`,
          [candidates.map((j) => j.data.stepId)]);
          const liveIds = new Set(live.map((r) => jobIdOf(r.id, r.generation)));
          for (const job of candidates) {
            if (liveIds.has(job.id!)) continue;
            await this.removeJob(queue, job.id!);
            removed++;
          }
        }
        report.jobsRemoved += removed;
        // The jobs removed here no longer take a place in the list: the next page starts that much earlier.
        this.jobOffsets.set(place, jobs.length < this.o.batchSize ? 0 : offset + jobs.length - removed);
      }
    }
    if (report.jobsRemoved) this.deps.metrics.reconcilerRepairs.inc({ kind: 'job_removed' }, report.jobsRemoved);
  }

  private async jobState(queue: string, jobId: string): Promise<string> {
    const state = await this.deps.backend.queue(queue).getJobState(jobId);
    return state === 'unknown' ? 'missing' : state;
  }

  private async removeJob(queue: string, jobId: string): Promise<void> {
    await this.deps.backend.queue(queue).remove(jobId).catch(() => undefined);
  }
}

/**
 * How much longer a queued step must wait when its job is re-created: after a
 * failed attempt, until the retry time Postgres recorded (`available_at`);
 * before the first, what is left, counted from `queued_at`, of its ready delay
 * (the step's `delayMs`, plus the run's `delayMs` for a root step on its first
 * generation).
 */
export function remainingDelayMs(row: { attempt: number; generation: number; root: boolean; delay_ms: number; waited_ms: number | string; retry_wait_ms: number | string; options: { delayMs: number } }): number {
  if (row.attempt > 0) return Math.max(0, Math.ceil(Number(row.retry_wait_ms)));
  const total = row.options.delayMs + (row.root && row.generation === 0 ? row.delay_ms : 0);
  return Math.max(0, Math.round(total - Number(row.waited_ms)));
}
