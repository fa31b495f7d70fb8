import { randomUUID } from 'node:crypto';
import { appendEvents, readAudit, type AuditEvent } from '../audit/audit';
import type { Logger } from 'pino';
import type { Dispatcher } from '../queue/dispatcher';
import type { Queryable, Sql } from '../db/sql';
import { CommitUnknownError, invalidRequest, invalidState, notFound, payloadTooLarge, unknownWorkflow, type RequestError } from '../errors';
import { isTransientError, withInfraRetry } from '../infra/retry';
import { DAY_MS, findNonJson, isJsonObject, isUuid } from '../json';
import type { Metrics } from '../telemetry/metrics';
import { createRunSchema, formatIssue, listRunsSchema } from './schemas';
import { toReadyStep, type ReadyStep } from '../steps/ready-step';
import type { RunStore } from './run-store';
import type { StepOptionsJson } from '../entities/step.entity';
import type { AuditEventView, CreateRunRequest, ListRunsQuery, Page, ResolvedWorkflow, RunListItem, RunView, RunWithSteps } from '../types';
import { RUN_COLUMNS, RUN_LIST_COLUMNS, STEP_COLUMNS, toRunListItem, toRunView, toStepView } from './views';
import type { WorkflowRegistry } from '../workflows/workflow-registry';
import { InputValidator } from '../workflows/input-schema';
import { kindOptionsOf } from '../waits/definition';
import { flowOptionsOf } from '../flow/flow-spec';

/** Options of the run service. */
export interface RunServiceOptions {
  /** Largest run input in bytes of JSON. Default 1 MiB. */
  maxInputBytes?: number;
}

/** The outcome of one item of a batch. */
export type CreateOutcome = { ok: true; run: RunView; created: boolean } | { ok: false; error: RequestError };

interface Prepared {
  index: number;
  id: string;
  request: Required<Pick<CreateRunRequest, 'workflow' | 'workspace'>> & CreateRunRequest;
  input: Record<string, unknown>;
  workflow: ResolvedWorkflow;
}

/** How long a producer call rides out transient Postgres failures (a restart) before it throws. */
const RETRY_WITHIN_MS = 15_000;

/**
 * Creates, reads, lists, cancels and resumes runs. Creation writes runs, steps
 * and audit events in one transaction and enqueues the root steps after commit.
 *
 * Transient Postgres failures (the table in `infra/retry.ts`, e.g. a pooled
 * connection a restart killed) are retried for up to 15 s where repeating is
 * safe: reads, cancels, creates that failed before COMMIT, and keyed creates.
 * An unkeyed create cut off during COMMIT throws `CommitUnknownError`.
 */
export class RunService {
  private readonly maxInputBytes: number;
  /** Each version's input schema, compiled once. */
  private readonly inputs = new InputValidator();

  constructor(
    private readonly sql: Sql,
    private readonly store: RunStore,
    private readonly registry: WorkflowRegistry,
    private readonly dispatcher: Dispatcher,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    options: RunServiceOptions = {},
  ) {
    this.maxInputBytes = options.maxInputBytes ?? 1024 * 1024;
  }

  /**
   * Creates runs in one transaction; each item succeeds or fails on its own
   * (validation, unknown workflow). An idempotency key already seen in the
   * workspace gives the existing run (`created: false`).
   */
  async createRuns(requests: unknown[], actor: string, createdData?: Record<string, unknown>): Promise<CreateOutcome[]> {
    const outcomes: CreateOutcome[] = new Array(requests.length);
    const valid: Array<{ index: number; request: CreateRunRequest; input: Record<string, unknown> }> = [];
    requests.forEach((raw, index) => {
      try {
        valid.push({ index, ...this.validate(raw) });
      } catch (error) {
        outcomes[index] = { ok: false, error: error as RequestError };
      }
    });
    const names = [...new Set(valid.map((v) => v.request.workflow))];
    const workflows = valid.length ? await this.retry(() => this.registry.resolve(names)) : new Map();
    const prepared: Prepared[] = [];
    for (const v of valid) {
      const workflow = workflows.get(v.request.workflow);
      if (!workflow) {
        outcomes[v.index] = { ok: false, error: unknownWorkflow(v.request.workflow) };
        continue;
      }
      const refused = this.inputs.refusal(workflow, v.input);
      if (refused) {
        outcomes[v.index] = { ok: false, error: refused };
        continue;
      }
      prepared.push({ index: v.index, id: randomUUID(), request: { ...v.request, workspace: v.request.workspace ?? 'default' }, input: v.input, workflow });
    }
    if (prepared.length === 0) return outcomes;

    const keyless = prepared.some((p) => p.request.idempotencyKey === undefined);
    const { created, existing, roots } = await this.retry(async () => {
      let committing = false;
      try {
        return await this.sql.transaction(async (tx) => {
          const result = await this.insertRuns(tx, prepared, actor, createdData);
          committing = true;
          return result;
        });
      } catch (error) {
        // Lost during COMMIT: a keyed create repeats safely (the key finds the run); an unkeyed one might create it twice.
        if (committing && keyless && isTransientError(error)) throw new CommitUnknownError(error);
        throw error;
      }
    });
    await this.dispatcher.enqueue(roots);
    for (const p of prepared) {
      const row = created.get(p.id);
      if (row) outcomes[p.index] = { ok: true, created: true, run: toRunView(row) };
      else outcomes[p.index] = { ok: true, created: false, run: toRunView(existing.get(`${p.request.workspace}\u0000${p.request.idempotencyKey}`)) };
    }
    return outcomes;
  }

  /** Creates one run; throws the RequestError of a bad request. */
  async createRun(request: CreateRunRequest, actor: string): Promise<{ run: RunView; created: boolean }> {
    const [outcome] = await this.createRuns([request], actor);
    if (!outcome.ok) throw outcome.error;
    return { run: outcome.run, created: outcome.created };
  }

  private validate(raw: unknown): { request: CreateRunRequest; input: Record<string, unknown> } {
    const parsed = createRunSchema.safeParse(raw);
    if (!parsed.success) throw invalidRequest(formatIssue(parsed.error), { issues: parsed.error.issues.slice(0, 5).map((i) => ({ path: i.path, message: i.message })) });
    const { runAt, ...rest } = parsed.data as CreateRunRequest;
    const request: CreateRunRequest = rest;
    if (runAt !== undefined) {
      // A time becomes the delay from now (this process's clock), bounded as delayMs is.
      const delayMs = Math.max(0, Math.ceil(new Date(runAt).getTime() - Date.now()));
      if (!Number.isFinite(delayMs) || delayMs > 30 * DAY_MS) throw invalidRequest('runAt: must be within 30 days from now');
      request.delayMs = delayMs;
    }
    const rawInput = (request as { input?: unknown }).input;
    if (rawInput !== undefined && rawInput !== null && !isJsonObject(rawInput)) {
      throw invalidRequest('input: must be a JSON object');
    }
    const input = (rawInput ?? {}) as Record<string, unknown>;
    const bad = findNonJson(input, 'input');
    if (bad) throw invalidRequest(bad);
    const bytes = Buffer.byteLength(JSON.stringify(input));
    if (bytes > this.maxInputBytes) throw payloadTooLarge(`input is ${bytes} bytes; the limit is ${this.maxInputBytes}`);
    return { request, input };
  }

  private async insertRuns(tx: Queryable, prepared: Prepared[], actor: string, createdData?: Record<string, unknown>) {
    const inserted = await tx.query(`
      INSERT INTO drover.runs (id, workflow, workflow_version, definition, status, input, workspace, priority, delay_ms, idempotency_key, open_steps)
      SELECT id, wf, ver, def, 'pending', inp, ws, pri, dly, ikey, n
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[], $7::int[], $8::int[], $9::text[], $10::int[])
             AS t(id, wf, ver, def, inp, ws, pri, dly, ikey, n)
      ON CONFLICT (workspace, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING ${RUN_COLUMNS}`, [
      prepared.map((p) => p.id),
      prepared.map((p) => p.workflow.name),
      prepared.map((p) => p.workflow.version),
      prepared.map((p) => JSON.stringify(p.workflow)),
      prepared.map((p) => JSON.stringify(p.input)),
      prepared.map((p) => p.request.workspace),
      prepared.map((p) => p.request.priority ?? 0),
      prepared.map((p) => p.request.delayMs ?? 0),
      prepared.map((p) => p.request.idempotencyKey ?? null),
      prepared.map((p) => p.workflow.steps.length),
    ]);
    const created = new Map<string, any>(inserted.map((r) => [r.id, r]));
    const existing = new Map<string, any>();
    const missing = prepared.filter((p) => !created.has(p.id));
    if (missing.length) {
      // Lost the race on an idempotency key (or repeated it): return the run that holds it.
      const rows = await tx.query(`
        SELECT ${RUN_COLUMNS} FROM drover.runs r
          JOIN unnest($1::text[], $2::text[]) AS k(ws, ikey) ON r.workspace = k.ws AND r.idempotency_key = k.ikey`,
      [missing.map((p) => p.request.workspace), missing.map((p) => p.request.idempotencyKey)]);
      for (const r of rows) existing.set(`${r.workspace}\u0000${r.idempotency_key}`, r);
    }

    const steps = { id: [] as string[], run: [] as string[], name: [] as string[], proc: [] as string[], queue: [] as string[],
      status: [] as string[], deps: [] as string[], remaining: [] as number[], max: [] as number[], options: [] as string[], sink: [] as boolean[] };
    const roots: ReadyStep[] = [];
    const audit: AuditEvent[] = [];
    for (const p of prepared) {
      if (!created.has(p.id)) continue;
      audit.push({ type: 'run.created', runId: p.id, stepId: null, ...(createdData ? { data: createdData } : {}) });
      const dependedOn = new Set(p.workflow.steps.flatMap((s) => s.dependsOn));
      for (const s of p.workflow.steps) {
        const id = randomUUID();
        const root = s.dependsOn.length === 0;
        const options: StepOptionsJson = { backoff: s.backoff, delayMs: s.delayMs, timeoutMs: s.timeoutMs, priority: s.priority, ...(s.params ? { params: s.params } : {}),
          ...kindOptionsOf(s), ...flowOptionsOf(p.workflow, s, p.input, p.request.workspace) };
        steps.id.push(id); steps.run.push(p.id); steps.name.push(s.name); steps.proc.push(s.processor); steps.queue.push(s.queue);
        steps.status.push(root ? 'queued' : 'pending'); steps.deps.push(JSON.stringify(s.dependsOn));
        steps.remaining.push(s.dependsOn.length); steps.max.push(s.attempts); steps.options.push(JSON.stringify(options));
        steps.sink.push(!dependedOn.has(s.name));
        if (root) {
          audit.push({ type: 'step.queued', runId: p.id, stepId: id });
          roots.push({ ...toReadyStep({ id, run_id: p.id, name: s.name, processor: s.processor, queue: s.queue, generation: 0, attempt: 0, max_attempts: s.attempts, options }, p.request.priority ?? 0, p.workflow.name), extraDelayMs: p.request.delayMs ?? 0 });
        }
      }
    }
    if (steps.id.length) {
      await tx.query(`
        INSERT INTO drover.steps (id, run_id, name, processor, queue, status, depends_on, deps_remaining, max_attempts, options, sink, queued_at)
        SELECT id, run, name, proc, queue, status, ARRAY(SELECT jsonb_array_elements_text(deps)), remaining, maxa, opts, sink,
               CASE WHEN status = 'queued' THEN now() END
          FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::int[], $9::int[], $10::jsonb[], $11::bool[])
               AS t(id, run, name, proc, queue, status, deps, remaining, maxa, opts, sink)`,
      [steps.id, steps.run, steps.name, steps.proc, steps.queue, steps.status, steps.deps, steps.remaining, steps.max, steps.options, steps.sink]);
      await appendEvents(tx, actor, audit);
    }
    return { created, existing, roots };
  }

  /** A run with its steps (in definition order). */
  async getRun(id: string): Promise<RunWithSteps> {
    if (!isUuid(id)) throw notFound('run');
    const [run] = await this.retry(() => this.sql.query(`SELECT ${RUN_COLUMNS}, definition FROM drover.runs WHERE id = $1`, [id]));
    if (!run) throw notFound('run');
    const steps = await this.retry(() => this.sql.query(`SELECT ${STEP_COLUMNS} FROM drover.steps WHERE run_id = $1`, [id]));
    const order = new Map<string, number>((run.definition.steps as Array<{ name: string }>).map((s, i) => [s.name, i]));
    steps.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
    const view = toRunView(run);
    // A workflow that names its output: the run's output is that step's output (the column keeps the sinks').
    const outputStep = (run.definition as { output?: string }).output;
    if (outputStep !== undefined && view.status === 'succeeded') view.output = steps.find((s) => s.name === outputStep)?.output ?? null;
    return { ...view, steps: steps.map(toStepView) };
  }

  /** Newest first, keyset-paginated on (created_at, id) so concurrent inserts never shift a page. */
  async listRuns(query: ListRunsQuery = {}, workspaces?: readonly string[] | null): Promise<Page<RunListItem>> {
    const repeated = Object.entries(query ?? {}).find(([, value]) => Array.isArray(value));
    if (repeated) throw invalidRequest(`${repeated[0]}: must be given once, as a single value`);
    const parsed = listRunsSchema.safeParse(query);
    if (!parsed.success) throw invalidRequest(formatIssue(parsed.error, 'query'));
    const q = parsed.data;
    const limit = q.limit ?? 20;
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => { params.push(value); where.push(clause.replace('?', `$${params.length}`)); };
    if (q.status) add('status = ?', q.status);
    // Open runs have an index of their own (runs_unfinished_idx); the others scan by creation time.
    if (q.status === 'pending' || q.status === 'running') where.push('finished_at IS NULL');
    if (q.workflow) add('workflow = ?', q.workflow);
    if (q.workspace) add('workspace = ?', q.workspace);
    if (workspaces) add('workspace = ANY(?::text[])', [...workspaces]);
    if (q.cursor) {
      const cursor = decodeCursor(q.cursor);
      params.push(cursor.at, cursor.id);
      where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    params.push(limit + 1);
    const rows = await this.retry(() => this.sql.query(`
      SELECT ${RUN_LIST_COLUMNS}, created_at::text AS cursor_at FROM drover.runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`, params));
    const more = rows.length > limit;
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items: items.map(toRunListItem), nextCursor: more && last ? encodeCursor(last.cursor_at, last.id) : null };
  }

  /** The audit trail of a run, oldest first. */
  async getAudit(id: string): Promise<{ items: AuditEventView[] }> {
    if (!isUuid(id)) throw notFound('run');
    const [run] = await this.retry(() => this.sql.query(`SELECT 1 FROM drover.runs WHERE id = $1`, [id]));
    if (!run) throw notFound('run');
    return { items: await this.retry(() => readAudit(this.sql, id)) };
  }

  /** Cancels an open run; `invalid_state` when it has finished. */
  async cancelRun(id: string, actor: string): Promise<RunView> {
    await this.requireRun(id);
    let retried = false;
    const cancelled = await this.retry(() => this.store.cancelRun(id, actor), () => { retried = true; });
    if (!cancelled) {
      const run = await this.requireRun(id);
      // A retried cancel whose lost first attempt did commit finds the run cancelled: that is its own outcome.
      if (retried && run.status === 'cancelled') return run;
      throw invalidState(`run ${id} is not pending or running, so it cannot be cancelled`);
    }
    this.metrics.runsFinished.inc({ status: 'cancelled' });
    for (const s of cancelled) this.metrics.stepsFinished.inc({ status: 'cancelled', queue: s.queue });
    await this.dispatcher.remove(cancelled.filter((s) => s.previous === 'queued'));
    // Its places under concurrency keys are free: their waiters move up (the reconciler would too).
    await this.dispatcher.flow?.settle([id]).catch((err) => this.logger.warn({ err, runId: id }, 'could not promote concurrency waiters'));
    return (await this.requireRun(id));
  }

  /** Resumes a failed or cancelled run; `invalid_state` otherwise. */
  async retryRun(id: string, actor: string): Promise<RunView> {
    const before = await this.requireRun(id);
    // A resumed run asks for its places under concurrency keys again (its old ones ended with it).
    if (before.status === 'failed' || before.status === 'cancelled') await this.retry(() => this.dispatcher.flow?.forget(id) ?? Promise.resolve());
    const ready = await this.store.retryRun(id, actor);
    if (!ready) throw invalidState(`run ${id} is ${before.status}; only failed or cancelled runs can be retried`);
    await this.dispatcher.enqueue(ready);
    return this.requireRun(id);
  }

  /**
   * A new run of the same workflow (its latest registered version) with the
   * run's input, workspace and priority; `run.created` carries `{rerunOf: id}`.
   * `unknown_workflow` when the workflow is no longer registered.
   */
  async rerunRun(id: string, actor: string): Promise<RunView> {
    const run = await this.requireRun(id);
    const [outcome] = await this.createRuns([{ workflow: run.workflow, input: run.input ?? {}, workspace: run.workspace, priority: run.priority }], actor, { rerunOf: id });
    if (!outcome.ok) throw outcome.error;
    return outcome.run;
  }

  private async requireRun(id: string): Promise<RunView> {
    if (!isUuid(id)) throw notFound('run');
    const [row] = await this.retry(() => this.sql.query(`SELECT ${RUN_COLUMNS} FROM drover.runs WHERE id = $1`, [id]));
    if (!row) throw notFound('run');
    return toRunView(row);
  }

  /** Runs an operation that is safe to repeat, retrying transient Postgres failures. */
  private retry<T>(operation: () => Promise<T>, onRetry?: () => void): Promise<T> {
    return withInfraRetry(operation, {
      maxElapsedMs: RETRY_WITHIN_MS,
      onRetry: (error, attempt) => {
        onRetry?.();
        this.logger.debug({ attempt, reason: (error as Error)?.message }, 'retrying after a transient Postgres failure');
      },
    });
  }

  /** The run without its steps (cheap; for polling). */
  /** The workspace of a run, or undefined when there is no such run (or the id is malformed). */
  async workspaceOf(id: string): Promise<string | undefined> {
    if (!isUuid(id)) return undefined;
    const [row] = await this.retry(() => this.sql.query(`SELECT workspace FROM drover.runs WHERE id = $1`, [id]));
    return row?.workspace;
  }

  getRunSummary(id: string): Promise<RunView> {
    return this.requireRun(id);
  }
}

/** A keyset cursor of (created_at as Postgres' text, id), as `GET /api/runs` and the runs list page use. */
export function encodeCursor(createdAt: string, id: string): string {
  // Postgres' text of the timestamp keeps its microseconds; a JS Date would drop them.
  return Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
}

const PG_TIMESTAMP = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[ T]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?([+-]\d\d(:?\d\d)?|Z)?$/;

/** Whether a cursor's time is one Postgres accepts: its shape, and a day its month has (no 2024-02-31). */
function isCalendarTime(at: string): boolean {
  const m = PG_TIMESTAMP.exec(at);
  if (!m) return false;
  const [year, month, day] = at.slice(0, 10).split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
}

/** The (created_at, id) of a cursor `encodeCursor` made; `invalid_request` otherwise. */
export function decodeCursor(cursor: string): { at: string; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    if (typeof at === 'string' && typeof id === 'string' && isUuid(id) && isCalendarTime(at)) return { at, id };
  } catch {
    // fall through
  }
  throw invalidRequest('cursor: not a cursor this API returned');
}
