import { appendAudit, INSERT_AUDIT, type AuditRow } from '../audit/audit';
import { hotQuery, type Queryable, type Sql } from '../db/sql';
import type { StepOptionsJson } from '../entities/step.entity';
import type { SerializedError } from '../errors';
import { READY_COLUMNS, toReadyStep, type ReadyStep } from './ready-step';
import { cancelOpenSteps, finishRuns, type CancelledStep } from '../runs/run-store';
import { settleAfterFailure } from '../waits/join';
import { AFTER_RUN_LOCKS, FLOW_MAY_START, OUTCOME_FENCE, OUTCOME_START, RUN_LOCKS } from './transition-sql';

export { toReadyStep, type ReadyStep } from './ready-step';
export type { CancelledStep } from '../runs/run-store';

/** What a worker gets when it fences a step to `running`. */
export interface StartedStep {
  id: string;
  runId: string;
  name: string;
  processor: string;
  attempt: number;
  maxAttempts: number;
  options: StepOptionsJson;
  /** When it was last queued, in epoch ms (Postgres' clock). */
  queuedAtMs: number | null;
  input: Record<string, unknown> | null;
  workflow: string;
  workspace: string;
  parents: Record<string, unknown>;
  /** The step was `running` already: a stalled or lost attempt is taken over. */
  takeover: boolean;
  /** False when the start is not written (the one-write path: the outcome writes it); true once it is `running`. */
  recorded: boolean;
}

/** Outcome of a transition that may finish the run. */
export interface RunProgress {
  runId: string;
  /** Steps still open in the run after this transition (null: run already finished or cancelled). */
  openSteps: number | null;
}

/** A start the executor asks for: the job's step, run and generation, under a fresh lease. */
export interface StartRequest {
  stepId: string;
  /** The run the job claims: the start is fenced on the step belonging to it. */
  runId: string;
  /** The processor the job claims (the one this worker would run): fenced on the step's own. */
  processor: string;
  generation: number;
  lease: string;
  /**
   * Set for the late `running` write of an attempt that ran unrecorded past
   * `recordStartAfterMs`: fenced on the step being still `queued` at the
   * attempt count it saw (or already `running` under this lease, a replay).
   */
  seenAttempt?: number;
  /** How long ago that attempt started: its `started_at` is `now() - elapsedMs` by Postgres' clock. */
  elapsedMs?: number;
}

/**
 * The start of an attempt that was not written (it ended within
 * `recordStartAfterMs`): its outcome writes it, fenced on the step being still
 * open as the attempt saw it, `queued` in this generation at this attempt count
 * (every written start counts an attempt, so a start by anyone else moves it).
 */
export interface UnrecordedStart {
  generation: number;
  /** The step's attempt count when the attempt read it (the attempt is number `seenAttempt + 1`). */
  seenAttempt: number;
  /** How long ago the attempt started (the worker's monotonic clock): `started_at` is `now() - elapsedMs`. */
  elapsedMs: number;
  /** The worker that ran it. */
  worker: string;
}

/** A success the executor records under its lease. */
export interface SuccessRequest {
  stepId: string;
  lease: string;
  output: unknown;
  /** Set when the attempt's start was not written: the success writes it (one row update, one event). */
  start?: UnrecordedStart;
}

/** What a recorded success did. */
export interface StepSuccess extends RunProgress {
  /**
   * The run's final status when this batch finished it (null: still open, or
   * finished by another transition). Set on one outcome of the run only.
   */
  runStatus: 'succeeded' | 'failed' | null;
  /** Dependents it moved to `queued` (to enqueue after commit). */
  promoted: ReadyStep[];
}

/** What a final failure did to the rest of the run. */
export interface FailureOutcome extends RunProgress {
  /** The run's final status when this failure finished it. */
  runStatus: 'succeeded' | 'failed' | null;
  /** Steps cancelled by failFast. */
  cancelled: CancelledStep[];
  /** Descendants skipped because a dependency failed. */
  skipped: Array<{ id: string; queue: string }>;
  /** Dependents with `join: all_settled` it queued (to enqueue after commit). */
  promoted: ReadyStep[];
}

/**
 * The fenced transitions of steps and runs. Each changes a row only when it is
 * still in the state (and held by the lease) the caller saw, in the same
 * statement or transaction as its audit events: zero rows updated means
 * another actor moved it first, and the caller drops its result.
 *
 * **The one lock order** (ARCHITECTURE.md, invariant 9). A transition that
 * locks more than one row first locks the row of every run it touches, in id
 * order, `FOR NO KEY UPDATE`; only then the steps of those runs. So two
 * transitions of one run (a start, a success, a final failure, a cancel, a
 * resume, a finish) queue on the run row and never wait on each other in a
 * cycle, and batches spanning several runs take their run rows in one order.
 * In a single statement the order is forced by a `run_locks` CTE that the step
 * part reads as an uncorrelated scalar subquery (an InitPlan, run before the
 * first step row is locked). The transitions that touch one step row and no
 * other (a retryable failure, the reconciler's requeue) hold nothing while
 * they wait, so they cannot close a cycle and skip the run row.
 *
 * **Replays are idempotent per lease** (invariant 10). A transition retried
 * after its reply was lost (the commit happened) finds the step already moved
 * under its own lease and returns the first outcome: a start does not count
 * another attempt, a success returns the dependents it queued (enqueuing them
 * again is harmless: job ids are deterministic), a failure its run's progress.
 */
export class StepStore {
  constructor(private readonly sql: Sql) {}

  /**
   * `queued` → `running` (or takes over a `running` step whose job BullMQ
   * redelivered after a stall), counting a new attempt under a new lease.
   * Moves the run to `running` on its first start. One statement. Fenced on
   * the step being of `runId` (the run its job claims), of `generation` and
   * of `processor` (default: the step's own).
   */
  async markStepRunning(stepId: string, runId: string, generation: number, lease: string, workerId: string, processor?: string): Promise<StartedStep | null> {
    const claimed = processor ?? (await this.ownerOfStep(stepId))?.processor ?? '';
    return (await this.markStepsRunning([{ stepId, runId, generation, lease, processor: claimed }], workerId)).get(lease) ?? null;
  }

  /**
   * `markStepRunning` for the starts a worker has in hand at once, in one
   * statement (group commit), taking the run rows first (the lock order). A
   * start replayed under the lease it already holds returns that attempt
   * unchanged (no new attempt, no audit event).
   * @returns the started steps by lease; a lease that is absent lost its fence.
   */
  async markStepsRunning(starts: StartRequest[], workerId: string, q: Queryable = this.sql): Promise<Map<string, StartedStep>> {
    const rows = await hotQuery(q, 'drover_mark_steps_running', `
      WITH req AS (
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $6::uuid[], $7::text[], $8::int[], $9::float8[])
                   AS r(id, generation, lease, run_id, processor, seen_attempt, elapsed_ms)
      ), ${RUN_LOCKS}
      ), old AS (
        SELECT st.id, st.status, req.lease, st.status = 'running' AND st.lease = req.lease AS replay,
               st.run_id, st.name, st.processor, st.attempt, st.max_attempts, st.options, st.queued_at, st.depends_on,
               COALESCE(req.elapsed_ms, 0) AS elapsed_ms
          FROM drover.steps st JOIN req ON req.id = st.id AND req.generation = st.generation AND req.run_id = st.run_id
                                   AND req.processor = st.processor
         WHERE st.id = ANY ($1::uuid[]) AND st.status IN ('queued', 'running') AND ${AFTER_RUN_LOCKS}
           -- A late write of an unrecorded attempt never takes over: the step must be as that attempt saw it.
           AND (req.seen_attempt IS NULL OR (st.status = 'running' AND st.lease = req.lease)
                OR (st.status = 'queued' AND st.attempt = req.seen_attempt))
           AND ${FLOW_MAY_START}
         ORDER BY st.id
           FOR NO KEY UPDATE OF st
      ), fresh AS (
        UPDATE drover.steps st
           SET status = 'running', attempt = st.attempt + 1, lease = old.lease, worker_id = $4,
               started_at = now() - make_interval(secs => old.elapsed_ms / 1000)
          FROM old
         WHERE st.id = old.id AND NOT old.replay
        RETURNING st.id, st.run_id, st.name, st.processor, st.attempt, st.max_attempts, st.options, st.queued_at,
                  st.depends_on, st.lease, old.status = 'running' AS takeover, st.started_at
      ), s AS (
        SELECT id, run_id, name, processor, attempt, max_attempts, options, queued_at, depends_on, lease, takeover FROM fresh
        UNION ALL
        SELECT id, run_id, name, processor, attempt, max_attempts, options, queued_at, depends_on, lease, false
          FROM old WHERE replay
      ), r AS (
        UPDATE drover.runs SET status = 'running', started_at = (SELECT min(fresh.started_at) FROM fresh WHERE fresh.run_id = runs.id)
         WHERE runs.id = ANY (ARRAY(SELECT DISTINCT run_id FROM fresh)) AND runs.status = 'pending'
        RETURNING runs.id
      ), a AS (
        ${INSERT_AUDIT}
        SELECT 'run.started', r.id, NULL, $5, NULL FROM r
        UNION ALL
        SELECT 'step.started', fresh.run_id, fresh.id, $5, jsonb_build_object('attempt', fresh.attempt, 'takeover', fresh.takeover, 'startedAt', fresh.started_at) FROM fresh
      )
      SELECT s.id, s.run_id, s.name, s.processor, s.attempt, s.max_attempts, s.options, s.lease, s.takeover,
             (extract(epoch FROM s.queued_at) * 1000)::float8 AS queued_at_ms, runs.input, runs.workflow, runs.workspace,
             CASE WHEN cardinality(s.depends_on) = 0 THEN '{}'::jsonb ELSE
               COALESCE((SELECT jsonb_object_agg(p.name, p.output) FROM drover.steps p
                          WHERE p.run_id = s.run_id AND p.name = ANY (s.depends_on)), '{}'::jsonb) END AS parents
        FROM s JOIN drover.runs ON runs.id = s.run_id`,
      [starts.map((r) => r.stepId), starts.map((r) => r.generation), starts.map((r) => r.lease), workerId, `worker:${workerId}`,
        starts.map((r) => r.runId), starts.map((r) => r.processor), starts.map((r) => r.seenAttempt ?? null),
        starts.map((r) => r.elapsedMs ?? null)]);
    return new Map(rows.map((row): [string, StartedStep] => [row.lease, {
      id: row.id, runId: row.run_id, name: row.name, processor: row.processor, attempt: row.attempt,
      maxAttempts: row.max_attempts, options: row.options, queuedAtMs: row.queued_at_ms, input: row.input,
      workflow: row.workflow, workspace: row.workspace, parents: row.parents, takeover: row.takeover, recorded: true,
    }]));
  }

  /**
   * `running` → `succeeded` under the caller's lease; in the same statement,
   * dependents whose dependencies have all succeeded become `queued`, the run's
   * open-step counter drops, and the audit events are appended.
   * @returns null when the fence failed (the result must be dropped).
   */
  async markStepSucceeded(stepId: string, lease: string, output: unknown, actor: string): Promise<StepSuccess | null> {
    return (await this.markStepsSucceeded([{ stepId, lease, output }], actor)).get(lease) ?? null;
  }

  /**
   * `markStepSucceeded` for the successes a worker has in hand at once, in one
   * statement (group commit). A dependent two of them unblock is decremented
   * once by both; each run row is updated once with the sum, merging the
   * outputs of its sink steps, and a run whose last open step succeeds here
   * is finished here (`runStatus`), with `run.succeeded`. A run that had a
   * failed step is finished by a second statement (`finishRuns`), whose fresh
   * snapshot sees every failed step; callers never finish runs. The run rows are locked first (the lock order); a success
   * replayed under its lease returns the first outcome (`replayedSuccesses`).
   * @returns the outcome by lease (absent: the fence failed); each promoted
   *   step appears in exactly one outcome.
   */
  async markStepsSucceeded(successes: SuccessRequest[], actor: string, q: Queryable = this.sql): Promise<Map<string, StepSuccess>> {
    const rows = await hotQuery(q, 'drover_mark_steps_succeeded', `
      WITH req AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $5::int[], $6::int[], $7::float8[], $8::text[])
                   AS r(id, lease, output, generation, seen_attempt, elapsed_ms, worker)
      ), ${RUN_LOCKS}
      ), s AS (
        UPDATE drover.steps st SET status = 'succeeded', output = req.output, finished_at = now(),
               ${OUTCOME_START('st', 'req.lease', 'req.seen_attempt', 'req.elapsed_ms', 'req.worker')}
          FROM req
         WHERE st.id = ANY ($1::uuid[]) AND st.id = req.id AND ${AFTER_RUN_LOCKS}
           AND ${OUTCOME_FENCE('st', 'req.lease', 'req.seen_attempt', 'req.generation')}
        RETURNING st.id, st.run_id, st.name, st.attempt, st.sink, st.output, st.lease, st.started_at, st.worker_id,
                  req.seen_attempt IS NOT NULL AS fresh
      ), unblocked AS (
        SELECT c.id, count(*)::int AS n
          FROM s JOIN drover.steps c ON c.run_id = s.run_id AND c.depends_on @> ARRAY[s.name]::text[]
         WHERE NOT s.sink AND c.status = 'pending'
         GROUP BY c.id
      ), d AS (
        UPDATE drover.steps c
           SET deps_remaining = c.deps_remaining - u.n,
               status = CASE WHEN c.deps_remaining = u.n OR c.options->>'join' = 'any_succeeded' THEN 'queued' ELSE c.status END,
               queued_at = CASE WHEN c.deps_remaining = u.n OR c.options->>'join' = 'any_succeeded' THEN now() ELSE c.queued_at END
          FROM unblocked u
         WHERE c.id = ANY (ARRAY(SELECT id FROM unblocked)) AND c.id = u.id AND c.status = 'pending'
        RETURNING c.id, c.run_id, c.name, c.processor, c.queue, c.generation, c.attempt, c.max_attempts, c.options, c.status
      ), per_run AS (
        SELECT run_id, count(*)::int AS n, jsonb_object_agg(name, output) FILTER (WHERE sink) AS outputs,
               min(started_at) FILTER (WHERE fresh) AS started_at
          FROM s GROUP BY run_id
      ), r AS (
        UPDATE drover.runs SET
               open_steps = open_steps - l.n,
               output = CASE WHEN l.outputs IS NULL THEN output ELSE COALESCE(output, '{}'::jsonb) || l.outputs END,
               status = CASE WHEN open_steps = l.n AND failed_steps = 0 THEN 'succeeded'
                             WHEN status = 'pending' THEN 'running' ELSE status END,
               started_at = COALESCE(runs.started_at, l.started_at),
               finished_at = CASE WHEN open_steps = l.n AND failed_steps = 0 THEN now() ELSE finished_at END
          FROM per_run l
         WHERE runs.id = ANY (ARRAY(SELECT run_id FROM per_run)) AND runs.id = l.run_id AND runs.status IN ('pending', 'running')
        RETURNING runs.id, runs.open_steps, runs.priority, runs.status, runs.started_at
      ), a AS (
        -- An unrecorded attempt's start goes in its outcome's event; a run started and finished
        -- here gets one event, run.succeeded with its startedAt (no run.started of its own).
        ${INSERT_AUDIT}
        SELECT 'run.started', r.id, NULL, $4, NULL FROM r JOIN run_locks rl ON rl.id = r.id
         WHERE rl.status = 'pending' AND r.status = 'running'
        UNION ALL
        SELECT 'step.succeeded', s.run_id, s.id, $4, CASE WHEN s.fresh
                 THEN jsonb_build_object('attempt', s.attempt, 'startedAt', s.started_at, 'worker', s.worker_id)
                 ELSE jsonb_build_object('attempt', s.attempt) END FROM s
        UNION ALL
        SELECT 'step.queued', d.run_id, d.id, $4, NULL FROM d WHERE d.status = 'queued'
        UNION ALL
        SELECT 'run.succeeded', r.id, NULL, $4, CASE WHEN rl.status = 'pending' THEN jsonb_build_object('startedAt', r.started_at) END
          FROM r JOIN run_locks rl ON rl.id = r.id WHERE r.status = 'succeeded'
      )
      SELECT s.lease, s.run_id, r.open_steps, r.status AS run_status, NULL::json AS promoted
        FROM s LEFT JOIN r ON r.id = s.run_id
      UNION ALL
      SELECT NULL, d.run_id, NULL, NULL, json_build_object('id', d.id, 'run_id', d.run_id, 'name', d.name, 'processor', d.processor,
             'queue', d.queue, 'generation', d.generation, 'attempt', d.attempt, 'max_attempts', d.max_attempts,
             'options', d.options, 'run_priority', COALESCE(r.priority, 0), 'workflow', rl.workflow)
        FROM d LEFT JOIN r ON r.id = d.run_id LEFT JOIN run_locks rl ON rl.id = d.run_id WHERE d.status = 'queued'`,
      [successes.map((r) => r.stepId), successes.map((r) => r.lease), successes.map((r) => JSON.stringify(r.output ?? null)), actor,
        successes.map((r) => r.start?.generation ?? null), successes.map((r) => r.start?.seenAttempt ?? null),
        successes.map((r) => r.start?.elapsedMs ?? null), successes.map((r) => r.start?.worker ?? null)]);
    const outcomes = new Map<string, StepSuccess>();
    const firstOfRun = new Map<string, StepSuccess>();
    for (const row of rows) {
      if (row.lease === null) continue;
      const first = !firstOfRun.has(row.run_id);
      const outcome: StepSuccess = {
        runId: row.run_id, openSteps: row.open_steps, promoted: [],
        runStatus: first && row.run_status === 'succeeded' ? 'succeeded' : null,
      };
      outcomes.set(row.lease, outcome);
      if (first) firstOfRun.set(row.run_id, outcome);
    }
    for (const row of rows) {
      if (row.lease === null) firstOfRun.get(row.run_id)?.promoted.push(toReadyStep(row.promoted));
    }
    // A run whose last open step succeeded here but which had a failed step:
    // finished by a statement of its own, whose fresh snapshot lists every failed step.
    const toFinish = [...firstOfRun.values()].filter((o) => o.openSteps === 0 && o.runStatus === null);
    if (toFinish.length > 0) {
      const finished = await finishRuns(q, toFinish.map((o) => o.runId), actor);
      for (const o of toFinish) o.runStatus = finished.get(o.runId) ?? null;
    }
    const unanswered = successes.filter((r) => !outcomes.has(r.lease));
    if (unanswered.length > 0) for (const [lease, outcome] of await this.replayedSuccesses(unanswered)) outcomes.set(lease, outcome);
    return outcomes;
  }

  /**
   * The outcomes of successes that were recorded already under the same
   * lease (a retry after a lost reply): the run's progress, and the
   * dependents of each step still waiting in `queued` (the ones the first
   * success promoted, or a sibling did; enqueuing them again is harmless).
   * Runs only when a fence failed, so the hot path pays nothing for it.
   */
  private async replayedSuccesses(requests: SuccessRequest[]): Promise<Map<string, StepSuccess>> {
    const rows = await this.sql.query(`
      SELECT st.lease, st.run_id, runs.open_steps, runs.status AS run_status, runs.priority AS run_priority, runs.workflow,
             COALESCE((SELECT json_agg(json_build_object(${READY_COLUMNS.split(', ').map((c) => `'${c}', c.${c}`).join(', ')}) ORDER BY c.id)
                         FROM drover.steps c
                        WHERE c.run_id = st.run_id AND c.depends_on @> ARRAY[st.name]::text[] AND c.status = 'queued'), '[]') AS promoted
        FROM unnest($1::uuid[], $2::uuid[]) AS req(id, lease)
        JOIN drover.steps st ON st.id = req.id AND st.lease = req.lease AND st.status = 'succeeded'
        JOIN drover.runs ON runs.id = st.run_id`,
      [requests.map((r) => r.stepId), requests.map((r) => r.lease)]);
    return new Map(rows.map((row): [string, StepSuccess] => [row.lease, {
      runId: row.run_id,
      openSteps: row.run_status === 'pending' || row.run_status === 'running' ? row.open_steps : 0,
      runStatus: row.run_status === 'succeeded' ? 'succeeded' : null,
      promoted: row.promoted.map((p: unknown) => toReadyStep(p, row.run_priority, row.workflow)),
    }]));
  }

  /**
   * A failed attempt that will be retried: `running` → `queued` (backing off),
   * recording the error, when the next attempt may start (`available_at`, by
   * Postgres' clock) and a `step.attempt_failed` event. A replay (the step is
   * `queued` still under this lease: recorded, reply lost) answers true.
   */
  async markAttemptFailed(stepId: string, lease: string, error: SerializedError, actor: string, retryInMs: number, start?: UnrecordedStart): Promise<boolean> {
    // An unrecorded attempt may also start its run (pending → running): then the run row is locked first (the lock order).
    const rows = await this.sql.query(`
      WITH rl AS (
        SELECT id FROM drover.runs WHERE $6::int IS NOT NULL AND id = (SELECT run_id FROM drover.steps WHERE id = $1) FOR NO KEY UPDATE
      ), s AS (
        UPDATE drover.steps st SET status = 'queued', error = $3::jsonb, queued_at = now(),
               available_at = now() + make_interval(secs => $5::int / 1000.0),
               ${OUTCOME_START('st', '$2::uuid', '$6::int', '$8::float8', '$9::text')}
         WHERE id = $1 AND (SELECT count(*) FROM rl) >= 0 AND ${OUTCOME_FENCE('st', '$2::uuid', '$6::int', '$7::int')}
        RETURNING id, run_id, attempt, started_at, worker_id
      ), r AS (
        UPDATE drover.runs SET status = 'running', started_at = COALESCE(runs.started_at, s.started_at)
          FROM s WHERE $6::int IS NOT NULL AND runs.id = s.run_id AND runs.status = 'pending'
        RETURNING runs.id
      )
      ${INSERT_AUDIT}
      SELECT 'run.started', r.id, NULL, $4, NULL FROM r
      UNION ALL
      SELECT 'step.attempt_failed', s.run_id, s.id, $4,
             jsonb_build_object('attempt', s.attempt, 'error', $3::jsonb, 'retryInMs', $5::int)
             || CASE WHEN $6::int IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('startedAt', s.started_at, 'worker', s.worker_id) END FROM s
      RETURNING id`,
      [stepId, lease, JSON.stringify(error), actor, Math.round(retryInMs), start?.seenAttempt ?? null, start?.generation ?? null,
        start?.elapsedMs ?? null, start?.worker ?? null]);
    if (rows.length > 0) return true;
    const replayed = await this.sql.query(`SELECT 1 FROM drover.steps WHERE id = $1 AND lease = $2 AND status = 'queued'`, [stepId, lease]);
    return replayed.length > 0;
  }

  /**
   * The run and processor of a step (undefined: no such step). Asked only
   * when a start found nothing to start, to tell a stale job (its step
   * finished, or a newer generation) from one naming a step it has no
   * business with.
   */
  async ownerOfStep(stepId: string): Promise<{ runId: string; processor: string } | undefined> {
    const [row] = await this.sql.query(`SELECT run_id, processor FROM drover.steps WHERE id = $1`, [stepId]);
    return row ? { runId: row.run_id, processor: row.processor } : undefined;
  }

  /**
   * How long a queued step must still back off before its next attempt may
   * start (0: it may start now, or it is not queued in this generation).
   */
  async retryWaitMs(stepId: string, generation: number): Promise<number> {
    const [row] = await this.sql.query(`
      SELECT ceil(extract(epoch FROM available_at - now()) * 1000)::int AS wait_ms FROM drover.steps
       WHERE id = $1 AND generation = $2 AND status = 'queued' AND attempt > 0 AND available_at > now()`, [stepId, generation]);
    return row ? row.wait_ms : 0;
  }

  /**
   * A step failed for good: `running` → `failed`; its pending descendants
   * become `skipped`; with `failFast` every other open step is `cancelled`.
   * One transaction, run row first; finishes the run when nothing is left
   * open. A replay under the same lease returns the run's progress (the
   * first call skipped and cancelled what it had to).
   */
  async markStepFailed(stepId: string, lease: string, error: SerializedError, actor: string, attemptFailed: boolean, start?: UnrecordedStart): Promise<FailureOutcome | null> {
    return this.sql.transaction(async (tx) => {
      const [run] = await tx.query(`
        SELECT runs.id, runs.status, runs.open_steps FROM drover.runs
         WHERE runs.id = (SELECT run_id FROM drover.steps WHERE id = $1) FOR NO KEY UPDATE`, [stepId]);
      if (!run) return null;
      const [step] = await tx.query(`
        UPDATE drover.steps st SET status = 'failed', error = $3::jsonb, finished_at = now(),
               ${OUTCOME_START('st', '$2::uuid', '$4::int', '$6::float8', '$7::text')}
         WHERE id = $1 AND ${OUTCOME_FENCE('st', '$2::uuid', '$4::int', '$5::int')}
        RETURNING id, run_id, name, attempt, started_at, worker_id`,
      [stepId, lease, JSON.stringify(error), start?.seenAttempt ?? null, start?.generation ?? null, start?.elapsedMs ?? null, start?.worker ?? null]);
      if (!step) {
        const [replay] = await tx.query(`SELECT 1 FROM drover.steps WHERE id = $1 AND lease = $2 AND status = 'failed'`, [stepId, lease]);
        if (!replay) return null;
        return {
          runId: run.id, openSteps: run.status === 'cancelled' ? null : run.open_steps,
          runStatus: run.status === 'failed' || run.status === 'succeeded' ? run.status : null, cancelled: [], skipped: [], promoted: [],
        };
      }
      const events: AuditRow[] = [];
      // An unrecorded attempt starts its run here when it was the run's first.
      if (start && run.status === 'pending') {
        await tx.query(`UPDATE drover.runs SET status = 'running', started_at = COALESCE(started_at, $2) WHERE id = $1 AND status = 'pending'`,
          [run.id, step.started_at]);
        events.push(['run.started', null, null]);
      }
      const startOf = start ? { startedAt: step.started_at, worker: step.worker_id } : {};
      if (attemptFailed) events.push(['step.attempt_failed', step.id, { attempt: step.attempt, error, ...startOf }]);
      events.push(['step.failed', step.id, { attempt: step.attempt, error, ...startOf }]);
      const progress = await this.closeAfterFailure(tx, step.run_id, step.name, actor, events);
      return progress;
    });
  }

  /**
   * Skips the pending descendants of a failed step and, with failFast, cancels
   * the rest; updates the run's counters, appends the events and finishes the
   * run when nothing is left open. Runs inside the caller's transaction.
   */
  private async closeAfterFailure(tx: Queryable, runId: string, failedName: string, actor: string, events: AuditRow[]): Promise<FailureOutcome> {
    // Dependents settle by their join policy (src/waits/join.ts): skipped, still waiting, or queued.
    const { skipped, promoted } = await settleAfterFailure(tx, runId, failedName);
    for (const s of skipped) events.push(['step.skipped', s.id, { because: failedName }]);
    for (const p of promoted) events.push(['step.queued', p.id, { because: failedName }]);
    const [run] = await tx.query(`SELECT (definition->>'failFast')::boolean AS fail_fast FROM drover.runs WHERE id = $1`, [runId]);
    let cancelled: CancelledStep[] = [];
    if (run?.fail_fast) {
      cancelled = await cancelOpenSteps(tx, runId);
      for (const c of cancelled) events.push(['step.cancelled', c.id, { reason: 'failFast', because: failedName }]);
    }
    const [counts] = await tx.query(`
      UPDATE drover.runs SET open_steps = GREATEST(open_steps - $2::int, 0), failed_steps = failed_steps + 1
       WHERE id = $1 AND status IN ('pending', 'running')
      RETURNING open_steps`, [runId, 1 + skipped.length + cancelled.length]);
    await appendAudit(tx, runId, actor, events);
    const openSteps = counts ? counts.open_steps : null;
    const runStatus = openSteps === 0 ? (await finishRuns(tx, [runId], actor)).get(runId) ?? null : null;
    return { runId, openSteps, runStatus, cancelled, skipped: skipped.map((k) => ({ id: k.id, queue: k.queue })), promoted };
  }

  /**
   * The reconciler's repair of a `running` step whose worker is gone and whose
   * job is lost: back to `queued` (fenced on the lease it saw).
   */
  async requeueLostStep(stepId: string, lease: string | null, actor: string, reason: string): Promise<ReadyStep | null> {
    const rows = await this.sql.query(`
      WITH s AS (
        UPDATE drover.steps SET status = 'queued', queued_at = now()
         WHERE id = $1 AND status = 'running' AND lease IS NOT DISTINCT FROM $2::uuid
        RETURNING ${READY_COLUMNS}
      ), a AS (
        ${INSERT_AUDIT}
        SELECT 'step.requeued', s.run_id, s.id, $3, jsonb_build_object('reason', $4::text) FROM s
      )
      SELECT s.*, runs.priority AS run_priority, runs.workflow FROM s JOIN drover.runs ON runs.id = s.run_id`,
      [stepId, lease, actor, reason]);
    return rows[0] ? toReadyStep(rows[0]) : null;
  }
}
