import { randomUUID } from 'node:crypto';
import { appendAudit, type AuditRow } from '../audit/audit';
import type { Queryable, Sql } from '../db/sql';
import type { SerializedError } from '../errors';
import type { StepOptionsJson } from '../entities/step.entity';
import { READY_COLUMNS, toReadyStep, type ReadyStep } from '../steps/ready-step';
import type { FailureOutcome, StepStore, StepSuccess } from '../steps/step-store';
import { elementName } from './kinds';

/** A waiting step as its job finds it (with its run). */
export interface WaitingStep {
  id: string;
  runId: string;
  name: string;
  processor: string;
  queue: string;
  generation: number;
  options: StepOptionsJson;
  maxAttempts: number;
  /** Ms until `wake_at` (negative: past; null: none). */
  wakeInMs: number | null;
  /** Ms since the wait began (`started_at`; null: not begun). */
  waitedMs: number | null;
  runStatus: string;
  runPriority: number;
  workflow: string;
  workspace: string;
  input: Record<string, unknown>;
  parents: Record<string, unknown>;
}

/**
 * The SQL of the step kinds drover runs itself (CONTRACT §7). Every
 * transition takes the run row first (`lockRun`), then the step (the one
 * lock order), and is fenced on the step being `queued` in the generation its
 * job carries. A wait that ends is recorded by the same statements as any
 * step: `claim` (queued → running under a fresh lease, `step.started`) then
 * StepStore's success or final failure, so dependents, counters and the run's
 * end are settled exactly as for a processor step.
 */
export class WaitStore {
  constructor(private readonly sql: Sql, private readonly steps: StepStore) {}

  /** Runs `work` in one transaction. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.sql.transaction(work);
  }

  /** StepStore's success of a claimed step, inside the caller's transaction. */
  async succeedClaimed(tx: Queryable, stepId: string, lease: string, output: unknown, actor: string): Promise<StepSuccess | undefined> {
    return (await this.steps.markStepsSucceeded([{ stepId, lease, output }], actor, tx)).get(lease);
  }

  /** The step of a job with its run and parents' outputs; undefined when not queued in that generation. */
  async load(stepId: string, runId: string, generation: number, q: Queryable = this.sql): Promise<WaitingStep | undefined> {
    const [row] = await q.query(`
      SELECT s.id, s.run_id, s.name, s.processor, s.queue, s.generation, s.options, s.max_attempts,
             (extract(epoch FROM s.wake_at - now()) * 1000)::float8 AS wake_in_ms,
             (extract(epoch FROM now() - s.started_at) * 1000)::float8 AS waited_ms,
             r.status AS run_status, r.priority AS run_priority, r.workflow, r.workspace, r.input,
             COALESCE((SELECT jsonb_object_agg(p.name, p.output) FROM drover.steps p
                        WHERE p.run_id = s.run_id AND p.name = ANY (s.depends_on) AND p.map_of IS NULL), '{}'::jsonb) AS parents
        FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id
       WHERE s.id = $1 AND s.run_id = $2 AND s.generation = $3 AND s.status = 'queued'`, [stepId, runId, generation]);
    if (!row) return undefined;
    return {
      id: row.id, runId: row.run_id, name: row.name, processor: row.processor, queue: row.queue, generation: row.generation,
      options: row.options, maxAttempts: row.max_attempts, wakeInMs: row.wake_in_ms, waitedMs: row.waited_ms,
      runStatus: row.run_status, runPriority: row.run_priority, workflow: row.workflow, workspace: row.workspace,
      input: row.input ?? {}, parents: row.parents,
    };
  }

  /** Locks the run row (`FOR NO KEY UPDATE`): the first lock of every wait transition. */
  async lockRun(tx: Queryable, runId: string): Promise<{ status: string } | undefined> {
    const [run] = await tx.query(`SELECT status FROM drover.runs WHERE id = $1 FOR NO KEY UPDATE`, [runId]);
    return run;
  }

  /**
   * The wait begins: `started_at` (and `wake_at`, as an interval from now or
   * an absolute time) set once, the run moved to `running`, an audit event.
   * @returns ms until wake_at (null when none), or undefined when the fence failed.
   */
  async beginWait(tx: Queryable, step: WaitingStep, wake: { inMs?: number; at?: string } | null, event: AuditRow, actor: string): Promise<number | null | undefined> {
    const [row] = await tx.query(`
      UPDATE drover.steps SET started_at = now(),
             wake_at = CASE WHEN $3::float8 IS NOT NULL THEN now() + make_interval(secs => $3::float8 / 1000)
                            WHEN $4::timestamptz IS NOT NULL THEN $4::timestamptz END
       WHERE id = $1 AND generation = $2 AND status = 'queued' AND started_at IS NULL
      RETURNING (extract(epoch FROM wake_at - now()) * 1000)::float8 AS wake_in_ms`,
    [step.id, step.generation, wake?.inMs ?? null, wake?.at ?? null]);
    if (!row) return undefined;
    await this.startRun(tx, step.runId, actor);
    await appendAudit(tx, step.runId, actor, [event]);
    return row.wake_in_ms;
  }

  /** `pending` → `running` for a run whose first step to begin is a wait. */
  async startRun(tx: Queryable, runId: string, actor: string): Promise<void> {
    const started = await tx.query(`UPDATE drover.runs SET status = 'running', started_at = now() WHERE id = $1 AND status = 'pending' RETURNING id`, [runId]);
    if (started.length) await appendAudit(tx, runId, actor, [['run.started', null, null]]);
  }

  /** queued → running under a fresh lease (fenced on the generation); the caller holds the run row. */
  async claim(tx: Queryable, stepId: string, generation: number, actor: string, workerId: string | null): Promise<string | undefined> {
    const lease = randomUUID();
    const [row] = await tx.query(`
      UPDATE drover.steps SET status = 'running', attempt = attempt + 1, lease = $3, worker_id = $4, started_at = COALESCE(started_at, now())
       WHERE id = $1 AND generation = $2 AND status = 'queued'
      RETURNING run_id, attempt`, [stepId, generation, lease, workerId]);
    if (!row) return undefined;
    await this.startRun(tx, row.run_id, actor);
    await appendAudit(tx, row.run_id, actor, [['step.started', stepId, { attempt: row.attempt }]]);
    return lease;
  }

  /** Ends a wait with its output, in one transaction: run row, claim, success (dependents promoted). */
  async succeed(step: Pick<WaitingStep, 'id' | 'runId' | 'generation'>, output: unknown, actor: string, workerId: string | null): Promise<StepSuccess | undefined> {
    return this.sql.transaction(async (tx) => {
      if (!(await this.lockRun(tx, step.runId))) return undefined;
      const lease = await this.claim(tx, step.id, step.generation, actor, workerId);
      if (!lease) return undefined;
      return this.succeedClaimed(tx, step.id, lease, output, actor);
    });
  }

  /**
   * Fails a wait for good (a timeout, a failed child, a bad path): claimed in
   * one transaction, failed by StepStore's final failure in the next (a crash
   * between leaves it `running` with no live job, which the reconciler re-queues).
   */
  async fail(step: Pick<WaitingStep, 'id' | 'runId' | 'generation'>, error: SerializedError, actor: string, workerId: string | null): Promise<FailureOutcome | null> {
    const lease = await this.sql.transaction(async (tx) => {
      if (!(await this.lockRun(tx, step.runId))) return undefined;
      return this.claim(tx, step.id, step.generation, actor, workerId);
    });
    if (!lease) return null;
    return this.steps.markStepFailed(step.id, lease, error, actor, false);
  }

  /** The first signal of a name a run received (the one that wins). */
  async firstSignal(q: Queryable, runId: string, name: string): Promise<{ id: string; payload: unknown } | undefined> {
    const [row] = await q.query(`SELECT id::text, payload FROM drover.signals WHERE run_id = $1 AND name = $2 ORDER BY id LIMIT 1`, [runId, name]);
    return row ? { id: row.id, payload: row.payload ?? null } : undefined;
  }

  /**
   * A map step's elements are created: one step row per item (`<map>[<i>]`,
   * the map's processor, attempts and backoff), the first `concurrency` queued,
   * each later one waiting (`all_settled`) on the one `concurrency` places
   * before it, so at most that many run at once. The map step goes back to
   * `pending` under a new generation (a new job id), waiting on the last
   * `concurrency` elements: they settle only after every earlier one has.
   * @returns the elements to enqueue, or undefined when the fence failed.
   */
  async startMap(step: WaitingStep, items: unknown[], concurrency: number, actor: string): Promise<ReadyStep[] | undefined> {
    return this.sql.transaction(async (tx) => {
      if (!(await this.lockRun(tx, step.runId))) return undefined;
      const n = items.length;
      const c = Math.min(concurrency, n);
      const waitOn = Array.from({ length: c }, (_, k) => elementName(step.name, n - c + k));
      const [moved] = await tx.query(`
        UPDATE drover.steps SET status = 'pending', generation = generation + 1, depends_on = depends_on || $3::text[],
               deps_remaining = $4, queued_at = NULL, started_at = now(), options = options || '{"join":"all_settled"}'::jsonb
         WHERE id = $1 AND generation = $2 AND status = 'queued'
        RETURNING id`, [step.id, step.generation, waitOn, c]);
      if (!moved) return undefined;
      const { map: _map, join: _join, ...base } = step.options;
      const rows = await tx.query(`
        INSERT INTO drover.steps (id, run_id, name, processor, queue, status, depends_on, deps_remaining, max_attempts, options, sink, queued_at, map_of, map_index)
        SELECT gen_random_uuid(), $1, $2 || '[' || x.i || ']', $3, $4, CASE WHEN x.i < $5 THEN 'queued' ELSE 'pending' END,
               CASE WHEN x.i < $5 THEN '{}'::text[] ELSE ARRAY[$2 || '[' || (x.i - $5) || ']'] END,
               CASE WHEN x.i < $5 THEN 0 ELSE 1 END, $6,
               $7::jsonb || jsonb_build_object('element', jsonb_build_object('index', x.i, 'item', items.value))
                         || CASE WHEN x.i < $5 THEN '{}'::jsonb ELSE '{"join":"all_settled"}'::jsonb END,
               false, CASE WHEN x.i < $5 THEN now() END, $8, x.i
          FROM jsonb_array_elements($9::jsonb) WITH ORDINALITY AS items(value, ord), LATERAL (SELECT (items.ord - 1)::int AS i) x
        RETURNING ${READY_COLUMNS}, status`,
      [step.runId, step.name, step.options.map!.processor, step.queue, c, step.maxAttempts, JSON.stringify({ ...base, delayMs: 0 }), step.id, JSON.stringify(items)]);
      await tx.query(`UPDATE drover.runs SET open_steps = open_steps + $2 WHERE id = $1 AND status IN ('pending', 'running')`, [step.runId, n]);
      await this.startRun(tx, step.runId, actor);
      const queued = rows.filter((r) => r.status === 'queued');
      await appendAudit(tx, step.runId, actor, [
        ['step.map_started', step.id, { elements: n, concurrency: c }],
        ...queued.map((r): AuditRow => ['step.queued', r.id, null]),
      ]);
      return queued.map((r) => toReadyStep(r, step.runPriority, step.workflow));
    });
  }

  /** A map step's elements: how many, and how many are still open. */
  async mapProgress(mapStepId: string): Promise<{ total: number; open: number }> {
    const [row] = await this.sql.query(`
      SELECT count(*)::int AS total, count(*) FILTER (WHERE status IN ('pending', 'queued', 'running'))::int AS open
        FROM drover.steps WHERE map_of = $1`, [mapStepId]);
    return row;
  }

  /** Every element of a map step in order, with its outcome. */
  async mapResults(mapStepId: string): Promise<Array<{ index: number; status: string; output: unknown; error: any }>> {
    const rows = await this.sql.query(`SELECT map_index, status, output, error FROM drover.steps WHERE map_of = $1 ORDER BY map_index`, [mapStepId]);
    return rows.map((r) => ({ index: r.map_index, status: r.status, output: r.output ?? null, error: r.error }));
  }

  /** The child run a child-run step started in its generation (found by its idempotency key). */
  async childOf(step: Pick<WaitingStep, 'workspace'>, key: string): Promise<{ id: string; status: string; output: unknown; error: any; outputStep?: string } | undefined> {
    const [row] = await this.sql.query(`
      SELECT id, status, output, error, definition->>'output' AS output_step FROM drover.runs WHERE workspace = $1 AND idempotency_key = $2`, [step.workspace, key]);
    if (!row) return undefined;
    let output = row.output;
    if (row.status === 'succeeded' && row.output_step) {
      const [s] = await this.sql.query(`SELECT output FROM drover.steps WHERE run_id = $1 AND name = $2`, [row.id, row.output_step]);
      output = s?.output ?? null;
    }
    return { id: row.id, status: row.status, output: output ?? null, error: row.error };
  }

  /** Links a child run to its parent run and step (once). */
  async linkChild(childRunId: string, parent: Pick<WaitingStep, 'id' | 'runId'>): Promise<void> {
    await this.sql.query(`UPDATE drover.runs SET parent_run_id = $2, parent_step_id = $3 WHERE id = $1 AND parent_run_id IS NULL`,
      [childRunId, parent.runId, parent.id]);
  }

  /** The parents of a map element (its map step's), or of an `all_settled` step (each `{status, output, error}`; `error` only of a failed one, not an earlier attempt's). */
  async preparedParents(stepId: string, element: boolean): Promise<Record<string, unknown>> {
    const [row] = element
      ? await this.sql.query(`
          SELECT COALESCE(jsonb_object_agg(p.name, p.output), '{}'::jsonb) AS parents
            FROM drover.steps e JOIN drover.steps m ON m.id = e.map_of
            JOIN drover.steps p ON p.run_id = m.run_id AND p.name = ANY (m.depends_on) AND p.map_of IS NULL
           WHERE e.id = $1`, [stepId])
      : await this.sql.query(`
          SELECT COALESCE(jsonb_object_agg(p.name, jsonb_build_object('status', p.status, 'output', p.output, 'error', CASE WHEN p.status = 'failed' THEN p.error END)), '{}'::jsonb) AS parents
            FROM drover.steps s JOIN drover.steps p ON p.run_id = s.run_id AND p.name = ANY (s.depends_on)
           WHERE s.id = $1`, [stepId]);
    return row?.parents ?? {};
  }
}
