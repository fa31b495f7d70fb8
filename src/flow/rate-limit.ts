import type { Queryable, Sql } from '../db/sql';
import type { StartRequest, StartedStep, StepStore } from '../steps/step-store';
import type { ResolvedKey, StepFlowJson } from './flow-spec';
import { lockKeys } from './flow-locks';

/** What a rate-limited start came to: started (or lost its fence: `started` null), or put off for `waitMs`. */
export type LimitedStart = { started: StartedStep | null } | { waitMs: number; key: string };

type RateKey = ResolvedKey & { periodMs: number };

/**
 * Rate limits (CONTRACT §8): at most `limit` starts per `periodMs` per key
 * value, over any window of that length. A rate-limited step starts in one
 * transaction that takes its keys' locks (in hash order, before the run and
 * step rows the start statement locks: the one lock order of flow control),
 * counts the starts of the last period and, when there is room, records the
 * start (the record the start fence asks for) and starts the step. Records
 * are stamped after the start's audit event, so a window of the audit
 * trail's start times never holds more than `limit`.
 *
 * Before a rate-limited step's job is enqueued, its turn is booked
 * (`book`): consecutive steps of a key are spaced `periodMs / limit` apart
 * and their jobs delayed until then (no worker slot, no attempt counted), so
 * a backlog wakes at the rate it may start. A job that still finds the window
 * full (it lost its turn) is put off until the window has room.
 */
export class RateLimiter {
  constructor(private readonly sql: Sql, private readonly store: StepStore) {}

  /**
   * Starts the step if its rate limits allow it now.
   */
  async start(request: StartRequest, workerId: string): Promise<LimitedStart> {
    const [step] = await this.sql.query(`
      SELECT st.options->'flow' AS flow, st.attempt, runs.status AS run_status FROM drover.steps st
        JOIN drover.runs ON runs.id = st.run_id WHERE st.id = $1`, [request.stepId]);
    const flow = (step?.flow ?? {}) as StepFlowJson;
    const keys: RateKey[] = [];
    if (flow.stepRate) keys.push(flow.stepRate);
    // A run's rate limit counts run starts: a root step of a run that has not started yet.
    if (flow.runRate && step?.run_status === 'pending') keys.push(flow.runRate);
    return this.sql.transaction(async (tx) => {
      await lockKeys(tx, keys);
      let waitMs = 0;
      let full: RateKey | undefined;
      for (const k of keys) {
        const wait = await this.waitFor(tx, k);
        if (wait > waitMs) {
          waitMs = wait;
          full = k;
        }
      }
      if (full) {
        // Booked turns are spaced, so this is a job that lost its turn to one that found room
        // first: it tries again when the window has room (plus a little, so two do not collide).
        return { waitMs: waitMs + Math.ceil(Math.random() * full.periodMs / full.limit), key: full.key };
      }
      const attempt = (step?.attempt ?? 0) + 1;
      // The record first (the start fence looks for it), stamped again once the start is written.
      const records = keys.length ? keys : [{ scope: '-', key: '-', limit: 1, periodMs: 1 }];
      await tx.query(`
        INSERT INTO drover.flow_starts (scope, key, at, period_ms, step_id, attempt)
        SELECT s, k, clock_timestamp(), p, $4, $5 FROM unnest($1::text[], $2::text[], $3::int[]) AS t(s, k, p)`,
      [records.map((k) => k.scope), records.map((k) => k.key), records.map((k) => k.periodMs), request.stepId, attempt]);
      const started = (await this.store.markStepsRunning([request], workerId, tx)).get(request.lease) ?? null;
      if (!started) throw new NotStarted();
      await tx.query(`UPDATE drover.flow_starts SET at = clock_timestamp() WHERE step_id = $1 AND attempt = $2`, [request.stepId, started.attempt]);
      return { started };
    }).catch((error) => {
      if (error instanceof NotStarted) return { started: null };
      throw error;
    });
  }

  /** How long until `k` has room for one more start (0: now), under its lock. */
  private async waitFor(tx: Queryable, k: RateKey): Promise<number> {
    // The limit-th newest start of the last period: the window has room once it is a period old.
    const [row] = await tx.query(`
      SELECT ceil(extract(epoch FROM at + make_interval(secs => $3::int / 1000.0) - clock_timestamp()) * 1000)::int AS wait_ms
        FROM drover.flow_starts
       WHERE scope = $1 AND key = $2 AND at > clock_timestamp() - make_interval(secs => $3::int / 1000.0)
       ORDER BY at DESC OFFSET $4 - 1 LIMIT 1`, [k.scope, k.key, k.periodMs, k.limit]);
    return row ? Math.max(1, row.wait_ms) : 0;
  }
}

/** The start lost its fence: the transaction rolls back (its record goes with it). */
class NotStarted extends Error {}

/**
 * Books the turns of rate-limited steps about to be enqueued: per key,
 * consecutive turns `periodMs / limit` apart from the key's next free turn
 * (now, when the key is idle). Returns each step's delay in ms (absent: 0),
 * which its job waits in the queue, so a backlog wakes at the rate it may
 * start rather than all at once. The start still counts the window exactly.
 */
export async function bookRateTurns(sql: Queryable, steps: Array<{ id: string; flow: StepFlowJson; runPending: boolean }>): Promise<Map<string, number>> {
  const byKey = new Map<string, { k: RateKey; ids: string[] }>();
  for (const s of steps) {
    for (const k of [s.flow.stepRate, s.runPending ? s.flow.runRate : undefined]) {
      if (!k) continue;
      const ref = `${k.scope}\u0000${k.key}`;
      const entry = byKey.get(ref) ?? { k, ids: [] };
      entry.ids.push(s.id);
      byKey.set(ref, entry);
    }
  }
  const delays = new Map<string, number>();
  for (const { k, ids } of byKey.values()) {
    const spacing = k.periodMs / k.limit;
    const [row] = await sql.query(`
      INSERT INTO drover.flow_rate_wakes AS w (scope, key, next_at)
      VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::float8 / 1000.0))
      ON CONFLICT (scope, key) DO UPDATE SET next_at = CASE
          -- Turns booked a period or more ahead while nothing started for a period: the steps they
          -- were booked for are gone (cancelled), so the schedule starts again from now.
          WHEN w.next_at > clock_timestamp() + make_interval(secs => $4::int / 1000.0) AND NOT EXISTS (
                 SELECT 1 FROM drover.flow_starts f WHERE f.scope = $1 AND f.key = $2
                    AND f.at > clock_timestamp() - make_interval(secs => $4::int / 1000.0))
          THEN clock_timestamp() ELSE GREATEST(w.next_at, clock_timestamp()) END + make_interval(secs => $3::float8 / 1000.0)
      RETURNING extract(epoch FROM next_at - clock_timestamp()) * 1000 - $3::float8 AS first_ms`,
    [k.scope, k.key, spacing * ids.length, k.periodMs]);
    ids.forEach((id, i) => {
      const ms = Math.max(0, Math.round(Number(row.first_ms) + i * spacing));
      delays.set(id, Math.max(delays.get(id) ?? 0, ms));
    });
  }
  return delays;
}
