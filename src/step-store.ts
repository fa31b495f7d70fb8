import type { Pool } from 'pg';
import type { Queryable, Sql } from './db/sql';
import type { StepOptionsJson } from './entities/step.entity';
import type { SerializedError } from './errors';

/** A step ready to be enqueued (what the dispatcher needs). */
export interface ReadyStep {
  id: string;
  runId: string;
  processor: string;
  queue: string;
  generation: number;
  attempt: number;
  maxAttempts: number;
  options: StepOptionsJson;
  /** The run's priority (a step's own priority wins when set). */
  runPriority: number;
  /** Extra delay for root steps: the run's `delayMs`. */
  extraDelayMs?: number;
}

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
}

/** Outcome of a transition that may finish the run. */
export interface RunProgress {
  runId: string;
  /** Steps still open in the run after this transition (null: run already finished or cancelled). */
  openSteps: number | null;
}

/** A start the executor asks for: the job's step and generation, under a fresh lease. */
export interface StartRequest {
  stepId: string;
  generation: number;
  lease: string;
}

/** A success the executor records under its lease. */
export interface SuccessRequest {
  stepId: string;
  lease: string;
  output: unknown;
}

/** What a recorded success did. */
export interface StepSuccess extends RunProgress {
  /** `succeeded` when this success finished the run (null: still open, or left for `finishRuns`). */
  runStatus: 'succeeded' | null;
  /** Dependents it moved to `queued` (to enqueue after commit). */
  promoted: ReadyStep[];
}

/** A step moved to `cancelled` whose job may still sit in the queue. */
export interface CancelledStep {
  id: string;
  queue: string;
  generation: number;
  previous: string;
}

/** What a final failure did to the rest of the run. */
export interface FailureOutcome extends RunProgress {
  /** The run's final status when this failure finished it. */
  runStatus: 'succeeded' | 'failed' | null;
  /** Steps cancelled by failFast. */
  cancelled: CancelledStep[];
  /** Descendants skipped because a dependency failed. */
  skipped: Array<{ id: string; queue: string }>;
}

const READY_COLUMNS = `id, run_id, processor, queue, generation, attempt, max_attempts, options`;

/** Maps a row with READY_COLUMNS (and run_priority) to a ReadyStep. */
export function toReadyStep(row: any, runPriority = row.run_priority ?? 0): ReadyStep {
  return {
    id: row.id, runId: row.run_id, processor: row.processor, queue: row.queue, generation: row.generation,
    attempt: row.attempt, maxAttempts: row.max_attempts, options: row.options, runPriority,
  };
}

/**
 * Runs a hot-path statement as a named prepared statement when `q` is the
 * pool: each connection parses and plans it once, not on every step (the
 * parse and plan of these CTEs cost as much Postgres CPU as running them).
 * Inside a transaction (no pool) it runs as plain parameterised SQL.
 */
async function hot(q: Queryable, name: string, text: string, params: unknown[]): Promise<any[]> {
  const pool = (q as { pool?: Pool }).pool;
  if (pool) return (await pool.query({ name, text, values: params })).rows;
  return q.query(text, params);
}

/**
 * The fenced transitions of steps and runs. Each changes a row only when it is
 * still in the state (and held by the lease) the caller saw, in the same
 * statement or transaction as its audit events: zero rows updated means
 * another actor moved it first, and the caller drops its result.
 */
export class StepStore {
  constructor(private readonly sql: Sql) {}

  /**
   * `queued` → `running` (or takes over a `running` step whose job BullMQ
   * redelivered after a stall), counting a new attempt under a new lease.
   * Moves the run to `running` on its first start. One statement.
   */
  async markStepRunning(stepId: string, generation: number, lease: string, workerId: string): Promise<StartedStep | null> {
    return (await this.markStepsRunning([{ stepId, generation, lease }], workerId)).get(lease) ?? null;
  }

  /**
   * `markStepRunning` for the starts a worker has in hand at once, in one
   * statement (group commit). Rows are locked in id order, so concurrent
   * batches of several workers cannot deadlock on them.
   * @returns the started steps by lease; a lease that is absent lost its fence.
   */
  async markStepsRunning(starts: StartRequest[], workerId: string): Promise<Map<string, StartedStep>> {
    const rows = await hot(this.sql, 'drover_mark_steps_running', `
      WITH req AS (
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[]) AS r(id, generation, lease)
      ), old AS (
        SELECT st.id, st.status, req.lease FROM drover.steps st JOIN req ON req.id = st.id AND req.generation = st.generation
         WHERE st.id = ANY ($1::uuid[]) AND st.status IN ('queued', 'running')
         ORDER BY st.id
           FOR UPDATE OF st
      ), s AS (
        UPDATE drover.steps st
           SET status = 'running', attempt = st.attempt + 1, lease = old.lease, worker_id = $4, started_at = now()
          FROM old
         WHERE st.id = old.id
        RETURNING st.id, st.run_id, st.name, st.processor, st.attempt, st.max_attempts, st.options, st.queued_at,
                  st.depends_on, st.lease, old.status = 'running' AS takeover
      ), r AS (
        UPDATE drover.runs SET status = 'running', started_at = now()
         WHERE runs.id = ANY (ARRAY(SELECT DISTINCT run_id FROM s)) AND runs.status = 'pending'
        RETURNING runs.id
      ), a AS (
        INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)
        SELECT 'run.started', r.id, NULL, $5, NULL FROM r
        UNION ALL
        SELECT 'step.started', s.run_id, s.id, $5, jsonb_build_object('attempt', s.attempt, 'takeover', s.takeover) FROM s
      )
      SELECT s.id, s.run_id, s.name, s.processor, s.attempt, s.max_attempts, s.options, s.lease, s.takeover,
             (extract(epoch FROM s.queued_at) * 1000)::float8 AS queued_at_ms, runs.input, runs.workflow, runs.workspace,
             CASE WHEN cardinality(s.depends_on) = 0 THEN '{}'::jsonb ELSE
               COALESCE((SELECT jsonb_object_agg(p.name, p.output) FROM drover.steps p
                          WHERE p.run_id = s.run_id AND p.name = ANY (s.depends_on)), '{}'::jsonb) END AS parents
        FROM s JOIN drover.runs ON runs.id = s.run_id`,
      [starts.map((r) => r.stepId), starts.map((r) => r.generation), starts.map((r) => r.lease), workerId, `worker:${workerId}`]);
    return new Map(rows.map((row): [string, StartedStep] => [row.lease, {
      id: row.id, runId: row.run_id, name: row.name, processor: row.processor, attempt: row.attempt,
      maxAttempts: row.max_attempts, options: row.options, queuedAtMs: row.queued_at_ms, input: row.input,
      workflow: row.workflow, workspace: row.workspace, parents: row.parents, takeover: row.takeover,
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
   * failed step is left for `finishRuns`, whose fresh snapshot sees every
   * failed step. Dependents and runs are locked in id order, so concurrent
   * batches of several workers cannot deadlock on them (the succeeding steps
   * themselves are held by the callers' leases).
   * @returns the outcome by lease (absent: the fence failed); each promoted
   *   step appears in exactly one outcome.
   */
  async markStepsSucceeded(successes: SuccessRequest[], actor: string): Promise<Map<string, StepSuccess>> {
    const rows = await hot(this.sql, 'drover_mark_steps_succeeded', `
      WITH req AS (
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[]) AS r(id, lease, output)
      ), s AS (
        UPDATE drover.steps st SET status = 'succeeded', output = req.output, finished_at = now()
          FROM req
         WHERE st.id = ANY ($1::uuid[]) AND st.id = req.id AND st.lease = req.lease AND st.status = 'running'
        RETURNING st.id, st.run_id, st.name, st.attempt, st.sink, st.output, st.lease
      ), unblocked AS (
        SELECT c.id, count(*)::int AS n
          FROM s JOIN drover.steps c ON c.run_id = s.run_id AND c.depends_on @> ARRAY[s.name]::text[]
         WHERE NOT s.sink AND c.status = 'pending'
         GROUP BY c.id
      ), kids AS (
        SELECT c.id, u.n FROM drover.steps c JOIN unblocked u ON u.id = c.id
         WHERE c.id = ANY (ARRAY(SELECT id FROM unblocked))
         ORDER BY c.id
           FOR UPDATE OF c
      ), d AS (
        UPDATE drover.steps c
           SET deps_remaining = c.deps_remaining - kids.n,
               status = CASE WHEN c.deps_remaining = kids.n THEN 'queued' ELSE c.status END,
               queued_at = CASE WHEN c.deps_remaining = kids.n THEN now() ELSE c.queued_at END
          FROM kids
         WHERE c.id = kids.id AND c.status = 'pending'
        RETURNING c.id, c.run_id, c.processor, c.queue, c.generation, c.attempt, c.max_attempts, c.options, c.status
      ), per_run AS (
        SELECT run_id, count(*)::int AS n, jsonb_object_agg(name, output) FILTER (WHERE sink) AS outputs
          FROM s GROUP BY run_id
      ), locked_runs AS (
        SELECT runs.id, p.n, p.outputs FROM drover.runs JOIN per_run p ON p.run_id = runs.id
         WHERE runs.id = ANY (ARRAY(SELECT run_id FROM per_run))
         ORDER BY runs.id
           FOR UPDATE OF runs
      ), r AS (
        UPDATE drover.runs SET
               open_steps = open_steps - l.n,
               output = CASE WHEN l.outputs IS NULL THEN output ELSE COALESCE(output, '{}'::jsonb) || l.outputs END,
               status = CASE WHEN open_steps = l.n AND failed_steps = 0 THEN 'succeeded' ELSE status END,
               finished_at = CASE WHEN open_steps = l.n AND failed_steps = 0 THEN now() ELSE finished_at END
          FROM locked_runs l
         WHERE runs.id = l.id AND runs.status IN ('pending', 'running')
        RETURNING runs.id, runs.open_steps, runs.priority, runs.status
      ), a AS (
        INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)
        SELECT 'step.succeeded', s.run_id, s.id, $4, jsonb_build_object('attempt', s.attempt) FROM s
        UNION ALL
        SELECT 'step.queued', d.run_id, d.id, $4, NULL FROM d WHERE d.status = 'queued'
        UNION ALL
        SELECT 'run.succeeded', r.id, NULL, $4, NULL FROM r WHERE r.status = 'succeeded'
      )
      SELECT s.lease, s.run_id, r.open_steps, r.status AS run_status, NULL::json AS promoted
        FROM s LEFT JOIN r ON r.id = s.run_id
      UNION ALL
      SELECT NULL, d.run_id, NULL, NULL, json_build_object('id', d.id, 'run_id', d.run_id, 'processor', d.processor,
             'queue', d.queue, 'generation', d.generation, 'attempt', d.attempt, 'max_attempts', d.max_attempts,
             'options', d.options, 'run_priority', COALESCE(r.priority, 0))
        FROM d LEFT JOIN r ON r.id = d.run_id WHERE d.status = 'queued'`,
      [successes.map((r) => r.stepId), successes.map((r) => r.lease), successes.map((r) => JSON.stringify(r.output ?? null)), actor]);
    const outcomes = new Map<string, StepSuccess>();
    const firstOfRun = new Map<string, StepSuccess>();
    for (const row of rows) {
      if (row.lease === null) continue;
      const outcome: StepSuccess = {
        runId: row.run_id, openSteps: row.open_steps, promoted: [],
        runStatus: row.run_status === 'succeeded' ? 'succeeded' : null,
      };
      outcomes.set(row.lease, outcome);
      if (!firstOfRun.has(row.run_id)) firstOfRun.set(row.run_id, outcome);
    }
    for (const row of rows) {
      if (row.lease === null) firstOfRun.get(row.run_id)?.promoted.push(toReadyStep(row.promoted));
    }
    return outcomes;
  }

  /**
   * A failed attempt that will be retried: `running` → `queued` (backing off),
   * recording the error, when the next attempt may start (`available_at`, by
   * Postgres' clock) and a `step.attempt_failed` event.
   */
  async markAttemptFailed(stepId: string, lease: string, error: SerializedError, actor: string, retryInMs: number): Promise<boolean> {
    const rows = await this.sql.query(`
      WITH s AS (
        UPDATE drover.steps SET status = 'queued', error = $3::jsonb, queued_at = now(),
               available_at = now() + make_interval(secs => $5::int / 1000.0)
         WHERE id = $1 AND lease = $2 AND status = 'running'
        RETURNING id, run_id, attempt
      )
      INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)
      SELECT 'step.attempt_failed', s.run_id, s.id, $4,
             jsonb_build_object('attempt', s.attempt, 'error', $3::jsonb, 'retryInMs', $5::int) FROM s
      RETURNING id`,
      [stepId, lease, JSON.stringify(error), actor, Math.round(retryInMs)]);
    return rows.length > 0;
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
   * One transaction; finishes the run when nothing is left open.
   */
  async markStepFailed(stepId: string, lease: string, error: SerializedError, actor: string, attemptFailed: boolean): Promise<FailureOutcome | null> {
    return this.sql.transaction(async (tx) => {
      const [step] = await tx.query(`
        UPDATE drover.steps SET status = 'failed', error = $3::jsonb, finished_at = now()
         WHERE id = $1 AND lease = $2 AND status = 'running'
        RETURNING id, run_id, name, attempt`, [stepId, lease, JSON.stringify(error)]);
      if (!step) return null;
      const events: AuditRow[] = [];
      if (attemptFailed) events.push(['step.attempt_failed', step.id, { attempt: step.attempt, error }]);
      events.push(['step.failed', step.id, { attempt: step.attempt, error }]);
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
    const skipped = await tx.query(`
      WITH RECURSIVE descendants(name) AS (
        SELECT $2::text
        UNION
        SELECT c.name FROM drover.steps c JOIN descendants d ON c.depends_on @> ARRAY[d.name]::text[]
         WHERE c.run_id = $1
      )
      UPDATE drover.steps SET status = 'skipped', finished_at = now()
       WHERE run_id = $1 AND status = 'pending' AND name IN (SELECT name FROM descendants)
      RETURNING id, queue`, [runId, failedName]);
    for (const s of skipped) events.push(['step.skipped', s.id, { because: failedName }]);
    const [run] = await tx.query(`SELECT (definition->>'failFast')::boolean AS fail_fast FROM drover.runs WHERE id = $1`, [runId]);
    let cancelled: CancelledStep[] = [];
    if (run?.fail_fast) {
      cancelled = await this.cancelOpenSteps(tx, runId);
      for (const c of cancelled) events.push(['step.cancelled', c.id, { reason: 'failFast', because: failedName }]);
    }
    const [counts] = await tx.query(`
      UPDATE drover.runs SET open_steps = GREATEST(open_steps - $2::int, 0), failed_steps = failed_steps + 1
       WHERE id = $1 AND status IN ('pending', 'running')
      RETURNING open_steps`, [runId, 1 + skipped.length + cancelled.length]);
    await insertAudit(tx, runId, actor, events);
    const openSteps = counts ? counts.open_steps : null;
    const runStatus = openSteps === 0 ? await this.finishRun(tx, runId, actor) : null;
    return { runId, openSteps, runStatus, cancelled, skipped: skipped.map((k) => ({ id: k.id, queue: k.queue })) };
  }

  /** Moves every open step of a run to `cancelled`; returns them with their previous state. */
  private cancelOpenSteps(tx: Queryable, runId: string): Promise<CancelledStep[]> {
    return tx.query(`
      UPDATE drover.steps st SET status = 'cancelled', finished_at = now()
        FROM (SELECT id, status FROM drover.steps
               WHERE run_id = $1 AND status IN ('pending', 'queued', 'running') FOR UPDATE) o
       WHERE st.id = o.id
      RETURNING st.id, st.queue, st.generation, o.status AS previous`, [runId]);
  }

  /**
   * Finishes a run whose steps are all terminal: `succeeded` with the outputs
   * of its sink steps, or `failed`. (A separate statement after the last
   * transition committed, so its snapshot sees every step's final row.) Fenced on the run being open with no open
   * steps, so calling it twice is harmless.
   * @returns the final status, or null when it was not (or no longer) finishable.
   */
  async finishRun(q: Queryable, runId: string, actor: string): Promise<'succeeded' | 'failed' | null> {
    return (await this.finishRuns(q, [runId], actor)).get(runId) ?? null;
  }

  /**
   * `finishRun` for several runs in one statement (the executor's group
   * commit of runs whose last steps finished together).
   * @returns the final status of each run it finished (absent: not finishable).
   */
  async finishRuns(q: Queryable, runIds: string[], actor: string): Promise<Map<string, 'succeeded' | 'failed'>> {
    const rows = await hot(q, 'drover_finish_runs', `
      WITH r AS (
        UPDATE drover.runs SET
          status = CASE WHEN failed_steps > 0 THEN 'failed' ELSE 'succeeded' END,
          finished_at = now(),
          output = CASE WHEN failed_steps > 0 THEN output ELSE (
            SELECT COALESCE(jsonb_object_agg(st.name, st.output), '{}'::jsonb) FROM drover.steps st
             WHERE st.run_id = runs.id AND st.sink) END,
          error = CASE WHEN failed_steps > 0 THEN (
            SELECT jsonb_build_object('message', 'failed steps: ' || string_agg(f.name, ', ' ORDER BY f.name),
                                      'failedSteps', jsonb_agg(f.name ORDER BY f.name))
              FROM drover.steps f WHERE f.run_id = runs.id AND f.status = 'failed') END
         WHERE id = ANY ($1::uuid[]) AND status IN ('pending', 'running') AND open_steps = 0
        RETURNING id, status
      )
      INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)
      SELECT 'run.' || r.status, r.id, NULL, $2, NULL FROM r
      RETURNING run_id, type`, [runIds, actor]);
    return new Map(rows.map((row) => [row.run_id as string, row.type.slice(4) as 'succeeded' | 'failed']));
  }

  /**
   * Cancels a run: open steps → `cancelled` (running ones see their signal
   * abort through the worker's lease check), run → `cancelled`.
   * @returns null when the run is not open (the caller answers invalid_state).
   */
  async cancelRun(runId: string, actor: string): Promise<CancelledStep[] | null> {
    return this.sql.transaction(async (tx) => {
      const steps = await this.cancelOpenSteps(tx, runId);
      const [run] = await tx.query(`
        UPDATE drover.runs SET status = 'cancelled', open_steps = 0, finished_at = now()
         WHERE id = $1 AND status IN ('pending', 'running') RETURNING id`, [runId]);
      if (!run) throw new NotOpen();
      await insertAudit(tx, runId, actor, [
        ['run.cancelled', null, null],
        ...steps.map((s): AuditRow => ['step.cancelled', s.id, { reason: 'run cancelled', previous: s.previous }]),
      ]);
      return steps;
    }).catch((error) => {
      if (error instanceof NotOpen) return null;
      throw error;
    });
  }

  /**
   * Resumes a `failed` or `cancelled` run: its failed, cancelled and skipped
   * steps start again with fresh attempts under a new generation (a new job id);
   * succeeded steps keep their outputs; steps whose dependencies have all
   * succeeded are queued at once.
   * @returns the steps to enqueue, or null when the run is not resumable.
   */
  async retryRun(runId: string, actor: string): Promise<ReadyStep[] | null> {
    return this.sql.transaction(async (tx) => {
      const [run] = await tx.query(`SELECT status, priority FROM drover.runs WHERE id = $1 FOR UPDATE`, [runId]);
      if (!run || (run.status !== 'failed' && run.status !== 'cancelled')) return null;
      const reset = await tx.query(`
        UPDATE drover.steps SET status = 'pending', attempt = 0, generation = generation + 1, error = NULL, output = NULL,
               lease = NULL, worker_id = NULL, queued_at = NULL, started_at = NULL, finished_at = NULL
         WHERE run_id = $1 AND status IN ('failed', 'cancelled', 'skipped')
        RETURNING id`, [runId]);
      const ready = await tx.query(`
        UPDATE drover.steps c SET
          deps_remaining = x.remaining,
          status = CASE WHEN x.remaining = 0 THEN 'queued' ELSE 'pending' END,
          queued_at = CASE WHEN x.remaining = 0 THEN now() ELSE NULL END
          FROM (SELECT s.id, (SELECT count(*) FROM drover.steps p
                               WHERE p.run_id = s.run_id AND p.name = ANY (s.depends_on) AND p.status <> 'succeeded')::int AS remaining
                  FROM drover.steps s WHERE s.id = ANY ($1::uuid[])) x
         WHERE c.id = x.id
        RETURNING ${READY_COLUMNS.split(', ').map((c) => `c.${c}`).join(', ')}, c.status`, [reset.map((r) => r.id)]);
      await tx.query(`
        UPDATE drover.runs SET status = 'running', generation = generation + 1, open_steps = $2, failed_steps = 0,
               error = NULL, finished_at = NULL
         WHERE id = $1`, [runId, reset.length]);
      const queued = ready.filter((r) => r.status === 'queued');
      await insertAudit(tx, runId, actor, [
        ['run.retried', null, { steps: reset.length }],
        ...queued.map((r): AuditRow => ['step.queued', r.id, null]),
      ]);
      return queued.map((r) => toReadyStep(r, run.priority));
    });
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
        INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)
        SELECT 'step.requeued', s.run_id, s.id, $3, jsonb_build_object('reason', $4::text) FROM s
      )
      SELECT s.*, runs.priority AS run_priority FROM s JOIN drover.runs ON runs.id = s.run_id`,
      [stepId, lease, actor, reason]);
    return rows[0] ? toReadyStep(rows[0]) : null;
  }
}

/** [type, stepId, data] of one audit event. */
export type AuditRow = [type: string, stepId: string | null, data: unknown];

/** Appends audit events of one run in one statement (ids follow array order). */
export async function insertAudit(q: Queryable, runId: string, actor: string, events: AuditRow[]): Promise<void> {
  if (events.length === 0) return;
  await q.query(`
    INSERT INTO drover.audit_events (type, run_id, step_id, actor, data)
    SELECT t, $1, s, $2, d FROM unnest($3::text[], $4::uuid[], $5::jsonb[]) WITH ORDINALITY AS e(t, s, d, n) ORDER BY n`,
    [runId, actor, events.map((e) => e[0]), events.map((e) => e[1]), events.map((e) => (e[2] === null ? null : JSON.stringify(e[2])))]);
}

class NotOpen extends Error {}
