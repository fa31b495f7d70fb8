import type { Logger } from 'pino';
import { appendEvents, type AuditEvent } from '../audit/audit';
import type { Queryable, Sql } from '../db/sql';
import type { ReadyStep } from '../steps/ready-step';
import { READY_COLUMNS, toReadyStep } from '../steps/ready-step';
import { RunStore } from '../runs/run-store';
import { needsAdmission, type ResolvedKey, type StepFlowJson } from './flow-spec';
import { lockKeys, type KeyRef } from './flow-locks';
import { bookRateTurns } from './rate-limit';

/** What the flow control enqueues and removes through (the dispatcher). */
export interface FlowQueue {
  enqueue(steps: ReadyStep[]): Promise<void>;
  remove(steps: Array<{ id: string; queue: string; generation: number }>): Promise<void>;
}

/** One subject asking for a place under a key. */
interface Candidate extends KeyRef {
  kind: 'run' | 'step';
  subject: string;
  generation: number;
  runId: string;
  workflow: string;
  limit: number;
  strategy: 'queue' | 'cancel_newest' | 'cancel_in_progress';
  /** A step of a run under workflow concurrency: the run's entry (`<runId>:0`), which must hold first. */
  after?: string;
}

/** A run the flow control cancels after its transaction, with the reason its audit event carries. */
interface Cancellation {
  runId: string;
  reason: Record<string, unknown>;
}

/** The gauges of `drover_flow_waiting` and `drover_flow_keys_at_limit`, read at scrape time. */
export interface FlowGauges {
  waiting: Array<{ workflow: string; kind: 'run' | 'step'; count: number }>;
  keysAtLimit: Array<{ workflow: string; count: number }>;
}

const ACTOR = 'flow';

/** SQL: whether flow entry `e` still counts (its run or step generation is open). */
const OPEN = (e: string) => `drover.flow_entry_open(${e}.kind, ${e}.subject, ${e}.generation)`;

/**
 * Concurrency keys (CONTRACT §8), enforced in Postgres.
 *
 * A run of a workflow with `concurrency`, and a step with `concurrency`,
 * needs a place under its key value before its jobs are enqueued: the
 * dispatcher hands such ready steps to `admit`, which grants places while
 * fewer than `limit` holders of the key are open and nobody waits before
 * them, and records the others as waiting (no BullMQ job, no worker slot).
 * A holder's place is counted only while its run or step is open, so the
 * transition that ends it releases the place in its own transaction; `settle`
 * (after a flow-controlled step ends or a run is cancelled) and the
 * reconciler then promote the oldest waiters of each key, and enqueue them.
 * The start statement is fenced on the place (`drover.flow_may_start`), so
 * a job that reached the queue some other way cannot run past the limit.
 *
 * Each key is served oldest first; keys do not share a queue, so one key's
 * backlog never sits in front of another key's runs (at most `limit` jobs
 * per key are in the queue at once).
 *
 * Lock order: a transaction here takes the advisory locks of its keys first,
 * in hash order, and then no run or step row (cancellations happen after
 * commit), so it cannot close a cycle with the step transitions.
 */
export class FlowControl {
  private readonly runs: RunStore;
  private queue?: FlowQueue;
  private waitersAfter: KeyRef = { scope: '', key: '' };

  constructor(private readonly sql: Sql, private readonly logger: Logger) {
    this.runs = new RunStore(sql);
  }

  /** Where admitted and promoted steps are enqueued (the dispatcher that uses this flow control). */
  attach(queue: FlowQueue): void {
    this.queue = queue;
  }

  /**
   * The ready steps that may be enqueued now: those without concurrency keys
   * as they are, and those whose run and step hold their places (granted here
   * when free). Waiting ones are recorded; runs over a `cancel_newest` limit,
   * and the oldest holders a `cancel_in_progress` run displaces, are cancelled.
   */
  async admit(steps: ReadyStep[]): Promise<ReadyStep[]> {
    const controlled = steps.filter((s) => needsAdmission(s.options.flow));
    if (controlled.length === 0) return steps;
    const candidates = new Map<string, Candidate>();
    for (const s of controlled) {
      const flow = s.options.flow as StepFlowJson;
      if (flow.run) candidates.set(`${s.runId}:0`, candidate('run', s.runId, 0, s, flow.run, flow.run.strategy));
      if (flow.step) candidates.set(`${s.id}:${s.generation}`, { ...candidate('step', s.id, s.generation, s, flow.step, 'queue'), ...(flow.run ? { after: `${s.runId}:0` } : {}) });
    }
    // The common case of a running run's later steps: every place is held already (a held place
    // stays held until its subject closes), so no lock and no transaction are needed.
    const held = await this.sql.query(`
      SELECT subject, generation FROM drover.flow_entries WHERE state = 'holding'
         AND (subject, generation) IN (SELECT * FROM unnest($1::uuid[], $2::int[]))`,
    [[...candidates.values()].map((c) => c.subject), [...candidates.values()].map((c) => c.generation)]);
    const { holding, cancellations } = held.length === candidates.size
      ? { holding: new Set(held.map((r) => `${r.subject}:${r.generation}`)), cancellations: [] }
      : await this.sql.transaction((tx) => this.grant(tx, [...candidates.values()]));
    await this.cancel(cancellations);
    return steps.filter((s) => {
      const flow = s.options.flow;
      if (!needsAdmission(flow)) return true;
      return (!flow!.run || holding.has(`${s.runId}:0`)) && (!flow!.step || holding.has(`${s.id}:${s.generation}`));
    });
  }

  private async grant(tx: Queryable, candidates: Candidate[]): Promise<{ holding: Set<string>; cancellations: Cancellation[] }> {
    await lockKeys(tx, candidates);
    const existing = await tx.query(`
      SELECT subject, generation, state FROM drover.flow_entries e
        JOIN unnest($1::uuid[], $2::int[]) AS c(subject, generation) USING (subject, generation)`,
    [candidates.map((c) => c.subject), candidates.map((c) => c.generation)]);
    const holding = new Set<string>();
    const known = new Set<string>();
    for (const row of existing) {
      known.add(`${row.subject}:${row.generation}`);
      if (row.state === 'holding') holding.add(`${row.subject}:${row.generation}`);
    }
    const fresh = candidates.filter((c) => !known.has(`${c.subject}:${c.generation}`));
    const cancellations: Cancellation[] = [];
    if (fresh.length === 0) return { holding, cancellations };
    const counts = await this.keyCounts(tx, fresh);
    const inserts: Array<Candidate & { state: 'waiting' | 'holding' }> = [];
    const evict: string[] = [];
    const events: AuditEvent[] = [];
    for (const c of fresh) {
      // A step asks for its own key only once its run holds the run's: a step of a waiting run
      // holding a step place could wait on a run that waits on that place (a cycle). It asks again
      // when its run is promoted.
      if (c.after && !holding.has(c.after)) continue;
      const n = counts.get(refOf(c)) ?? { holding: 0, waiting: 0, holders: [] };
      counts.set(refOf(c), n);
      if (n.holding < c.limit && n.waiting === 0) {
        inserts.push({ ...c, state: 'holding' });
        holding.add(`${c.subject}:${c.generation}`);
        n.holding++;
      } else if (c.strategy === 'cancel_newest') {
        cancellations.push({ runId: c.runId, reason: { reason: 'concurrency limit', strategy: c.strategy, key: c.key, limit: c.limit, running: n.holding } });
      } else if (c.strategy === 'cancel_in_progress') {
        // The oldest holders make room; the new run takes a place at once.
        while (n.holding >= c.limit && n.holders.length > 0) {
          const oldest = n.holders.shift()!;
          evict.push(oldest.subject);
          cancellations.push({ runId: oldest.runId, reason: { reason: 'concurrency limit', strategy: c.strategy, key: c.key, limit: c.limit, replacedBy: c.runId } });
          n.holding--;
        }
        inserts.push({ ...c, state: 'holding' });
        holding.add(`${c.subject}:${c.generation}`);
        n.holding++;
      } else {
        inserts.push({ ...c, state: 'waiting' });
        n.waiting++;
        events.push({ type: 'flow.waiting', runId: c.runId, stepId: c.kind === 'step' ? c.subject : null,
          data: { key: c.key, limit: c.limit, running: n.holding, of: c.kind } });
      }
    }
    if (evict.length) await tx.query(`UPDATE drover.flow_entries SET state = 'evicted' WHERE subject = ANY ($1::uuid[]) AND generation = 0 AND kind = 'run'`, [evict]);
    if (inserts.length) {
      await tx.query(`
        INSERT INTO drover.flow_entries (subject, generation, kind, run_id, workflow, scope, key, lim, state)
        SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[])
        ON CONFLICT (subject, generation) DO NOTHING`,
      [inserts.map((c) => c.subject), inserts.map((c) => c.generation), inserts.map((c) => c.kind), inserts.map((c) => c.runId),
        inserts.map((c) => c.workflow), inserts.map((c) => c.scope), inserts.map((c) => c.key), inserts.map((c) => c.limit), inserts.map((c) => c.state)]);
    }
    await appendEvents(tx, ACTOR, events);
    return { holding, cancellations };
  }

  /** Open holders of each key (oldest first), and whether an open waiter exists, under the keys' locks. */
  private async keyCounts(tx: Queryable, refs: KeyRef[]): Promise<Map<string, { holding: number; waiting: number; holders: Array<{ subject: string; runId: string }> }>> {
    const keys = uniqueRefs(refs);
    const rows = await tx.query(`
      SELECT k.scope, k.key, h.subject, h.run_id, h.kind,
             EXISTS (SELECT 1 FROM drover.flow_entries w WHERE w.scope = k.scope AND w.key = k.key AND w.state = 'waiting' AND ${OPEN('w')}) AS waiters
        FROM unnest($1::text[], $2::text[]) AS k(scope, key)
        LEFT JOIN LATERAL (
          SELECT e.subject, e.run_id, e.kind, e.seq FROM drover.flow_entries e
           WHERE e.scope = k.scope AND e.key = k.key AND e.state = 'holding' AND ${OPEN('e')}) h ON true
       ORDER BY h.seq`, [keys.map((r) => r.scope), keys.map((r) => r.key)]);
    const counts = new Map<string, { holding: number; waiting: number; holders: Array<{ subject: string; runId: string }> }>();
    for (const row of rows) {
      const ref = refOf(row);
      const n = counts.get(ref) ?? { holding: 0, waiting: row.waiters ? 1 : 0, holders: [] };
      counts.set(ref, n);
      if (row.subject === null) continue;
      n.holding++;
      if (row.kind === 'run') n.holders.push({ subject: row.subject, runId: row.run_id });
    }
    return counts;
  }

  /**
   * After a flow-controlled step or run of these runs ended (or was
   * cancelled): every key they held or waited on gives its free places to
   * its oldest waiters, whose steps are enqueued.
   */
  async settle(runIds: string[]): Promise<void> {
    if (runIds.length === 0) return;
    const keys = await this.sql.query(`SELECT DISTINCT scope, key FROM drover.flow_entries WHERE run_id = ANY ($1::uuid[])`, [runIds]);
    await this.promote(keys);
  }

  /**
   * Books the start turns of rate-limited steps about to be enqueued (see
   * `bookRateTurns`): their jobs wait in the queue until then.
   * @returns the delay in ms by step id
   */
  bookRates(steps: ReadyStep[]): Promise<Map<string, number>> {
    return bookRateTurns(this.sql, steps.map((s) => ({
      // A run's rate limit counts run starts: a root step on its first try in its first generation.
      id: s.id, flow: s.options.flow ?? {}, runPending: s.attempt === 0 && s.generation === 0,
    })));
  }

  /** Forgets a run's places and waits before it is resumed: the resumed run asks again. */
  async forget(runId: string): Promise<void> {
    await this.sql.query(`DELETE FROM drover.flow_entries WHERE run_id = $1`, [runId]);
  }

  /**
   * Promotes the oldest waiters of `keys` into their free places (entries of
   * closed subjects are dropped first) and enqueues what they unblock.
   * @returns how many waiters were promoted.
   */
  async promote(keys: KeyRef[]): Promise<number> {
    if (keys.length === 0) return 0;
    const promoted = await this.sql.transaction(async (tx) => {
      await lockKeys(tx, keys);
      const rows: any[] = [];
      for (const k of uniqueRefs(keys)) rows.push(...await this.promoteKey(tx, k));
      await appendEvents(tx, ACTOR, rows.map((r): AuditEvent => ({
        type: 'flow.admitted', runId: r.run_id, stepId: r.kind === 'step' ? r.subject : null, data: { key: r.key, limit: r.lim, of: r.kind },
      })));
      return rows;
    });
    if (promoted.length === 0) return 0;
    const ready = await this.readyOf(promoted);
    await this.queue?.enqueue(ready);
    return promoted.length;
  }

  /**
   * One key, under its lock: holders whose subject closed are dropped; then
   * the oldest open waiters fill the free places (the oldest waiter's limit),
   * closed waiters met on the way are dropped. Reads only the holders and the
   * head of the waiters, however long the queue.
   */
  private async promoteKey(tx: Queryable, k: KeyRef): Promise<any[]> {
    await tx.query(`
      DELETE FROM drover.flow_entries e WHERE e.scope = $1 AND e.key = $2 AND e.state IN ('holding', 'evicted') AND NOT ${OPEN('e')}`, [k.scope, k.key]);
    const [{ held }] = await tx.query(`
      SELECT count(*)::int AS held FROM drover.flow_entries WHERE scope = $1 AND key = $2 AND state = 'holding'`, [k.scope, k.key]);
    const out: any[] = [];
    for (;;) {
      const head = await tx.query(`
        SELECT e.seq, e.subject, e.generation, e.kind, e.run_id, e.key, e.lim, ${OPEN('e')} AS open
          FROM (SELECT * FROM drover.flow_entries WHERE scope = $1 AND key = $2 AND state = 'waiting' ORDER BY seq LIMIT $3) e
         ORDER BY e.seq`, [k.scope, k.key, 20]);
      if (head.length === 0) return out;
      const free = head[0].lim - held - out.length;
      if (free <= 0) return out;
      const closed = head.filter((r) => !r.open);
      const take = head.filter((r) => r.open).slice(0, free);
      if (closed.length) await tx.query(`DELETE FROM drover.flow_entries WHERE seq = ANY ($1::bigint[])`, [closed.map((r) => r.seq)]);
      if (take.length) {
        await tx.query(`UPDATE drover.flow_entries SET state = 'holding' WHERE seq = ANY ($1::bigint[])`, [take.map((r) => r.seq)]);
        out.push(...take);
      }
      // Stop when this page was not all closed waiters and the places are filled (or nobody is left).
      if (closed.length === 0 || take.length === free) return out;
    }
  }

  /** The queued steps promoted entries unblock: a step entry's own step; all queued steps of a run entry's run. */
  private async readyOf(entries: Array<{ subject: string; generation: number; kind: string }>): Promise<ReadyStep[]> {
    const steps = entries.filter((e) => e.kind === 'step');
    const runs = entries.filter((e) => e.kind === 'run').map((e) => e.subject);
    const rows = await this.sql.query(`
      SELECT ${READY_COLUMNS.split(', ').map((c) => `s.${c}`).join(', ')}, r.priority AS run_priority, r.workflow
        FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id
       WHERE s.status = 'queued' AND (
             (s.id, s.generation) IN (SELECT * FROM unnest($1::uuid[], $2::int[]))
          OR s.run_id = ANY ($3::uuid[]))`,
    [steps.map((e) => e.subject), steps.map((e) => e.generation), runs]);
    return rows.map((row) => toReadyStep(row));
  }

  /** Cancels runs over a `cancel_newest` limit or displaced by `cancel_in_progress`, each audited with its reason. */
  private async cancel(cancellations: Cancellation[]): Promise<void> {
    for (const c of cancellations) {
      const cancelled = await this.runs.cancelRun(c.runId, ACTOR, c.reason);
      if (cancelled === null) continue;
      this.logger.info({ runId: c.runId, ...c.reason }, 'run cancelled by its concurrency strategy');
      await this.queue?.remove(cancelled.filter((s) => s.previous === 'queued'));
    }
    // A displaced run may have held step keys: their waiters move up.
    if (cancellations.length) await this.settle(cancellations.map((c) => c.runId));
  }

  /**
   * The reconciler's share (invariant 11): keys with waiters get their free
   * places filled (a page of keys per pass, after the last pass's place, so
   * every key is visited), runs displaced by `cancel_in_progress` whose
   * cancel was lost are cancelled, and entries of closed subjects go.
   * @returns how many waiters were promoted.
   */
  async reconcile(batchSize = 500): Promise<number> {
    const keys = await this.sql.query(`
      SELECT DISTINCT scope, key FROM drover.flow_entries
       WHERE state = 'waiting' AND (scope, key) > ($1::text, $2::text)
       ORDER BY scope, key LIMIT $3`, [this.waitersAfter.scope, this.waitersAfter.key, batchSize]);
    this.waitersAfter = keys.length < batchSize ? { scope: '', key: '' } : keys[keys.length - 1];
    let promoted = 0;
    for (let i = 0; i < keys.length; i += 50) promoted += await this.promote(keys.slice(i, i + 50));
    const evicted = await this.sql.query(`
      SELECT e.run_id FROM drover.flow_entries e WHERE e.state = 'evicted' AND ${OPEN('e')} LIMIT $1`, [batchSize]);
    await this.cancel(evicted.map((e) => ({ runId: e.run_id, reason: { reason: 'concurrency limit', strategy: 'cancel_in_progress' } })));
    await this.sql.query(`
      DELETE FROM drover.flow_entries WHERE seq IN (
        SELECT seq FROM drover.flow_entries e WHERE e.state <> 'waiting' AND NOT ${OPEN('e')} LIMIT $1)`, [batchSize]);
    await this.sql.query(`
      DELETE FROM drover.flow_starts WHERE id IN (
        SELECT id FROM drover.flow_starts WHERE at < now() - make_interval(secs => period_ms / 1000.0) - interval '1 minute' LIMIT $1)`, [batchSize * 10]);
    return promoted;
  }

  /** Waiting runs and steps per workflow, and keys at their limit per workflow (the scrape-time gauges). */
  async gauges(): Promise<FlowGauges> {
    const waiting = await this.sql.query(`
      SELECT workflow, kind, count(*)::int AS count FROM drover.flow_entries e
       WHERE state = 'waiting' AND ${OPEN('e')} GROUP BY workflow, kind`);
    const atLimit = await this.sql.query(`
      SELECT workflow, count(*)::int AS count FROM (
        SELECT min(workflow) AS workflow, scope, key, max(lim) AS lim, count(*) AS n FROM drover.flow_entries e
         WHERE state = 'holding' AND ${OPEN('e')} GROUP BY scope, key) k
       WHERE n >= lim GROUP BY workflow`);
    return { waiting, keysAtLimit: atLimit };
  }
}

function candidate(kind: 'run' | 'step', subject: string, generation: number, s: ReadyStep, key: ResolvedKey, strategy: Candidate['strategy']): Candidate {
  return { kind, subject, generation, runId: s.runId, workflow: s.workflow, scope: key.scope, key: key.key, limit: key.limit, strategy };
}

function uniqueRefs(refs: KeyRef[]): KeyRef[] {
  const seen = new Map<string, KeyRef>();
  for (const r of refs) seen.set(refOf(r), { scope: r.scope, key: r.key });
  return [...seen.values()];
}

function refOf(r: KeyRef): string {
  return `${r.scope}\u0000${r.key}`;
}
