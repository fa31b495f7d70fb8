import { appendAudit } from '../audit/audit';
import type { Sql } from '../db/sql';
import { invalidRequest, invalidState, notFound, payloadTooLarge } from '../errors';
import { findNonJson, isoTime, isUuid } from '../json';
import type { Dispatcher } from '../queue/dispatcher';
import type { ReadyStep } from '../steps/ready-step';
import type { StepStore } from '../steps/step-store';
import { WAIT_PROCESSORS } from './kinds';
import { OnFailure } from './on-failure';
import { WaitStore } from './wait-store';
import type { SignalView } from '../types';

export type { SignalView } from '../types';

/** Signal names: as step names. */
export const SIGNAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Largest signal payload, in bytes of JSON. */
export const MAX_SIGNAL_PAYLOAD_BYTES = 64 * 1024;


/**
 * Sends signals to runs (CONTRACT §7). One transaction takes the run row
 * (the lock order: run, then its steps), refuses a finished run, keeps the
 * signal, and ends every step waiting for that name with the first signal's
 * payload; a signal step whose job looks later finds the kept signal under the
 * same run-row lock (src/waits/wait-executor.ts), so no wake-up is lost either
 * way. Audited as `run.signal_received` with the sender.
 */
export class SignalService {
  private readonly waits: WaitStore;

  constructor(private readonly sql: Sql, steps: StepStore, private readonly dispatcher: Dispatcher) {
    this.waits = new WaitStore(sql, steps);
  }

  /** Sends `name` with `payload` to a run; `not_found`, `invalid_state` (finished), `invalid_request`, `payload_too_large`. */
  async send(runId: string, name: string, payload: unknown, actor: string): Promise<SignalView> {
    if (!isUuid(runId)) throw notFound('run');
    if (typeof name !== 'string' || !SIGNAL_NAME.test(name)) throw invalidRequest('signal: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}');
    const value = payload === undefined ? null : payload;
    const bad = findNonJson(value, 'payload');
    if (bad) throw invalidRequest(bad);
    const bytes = Buffer.byteLength(JSON.stringify(value));
    if (bytes > MAX_SIGNAL_PAYLOAD_BYTES) throw payloadTooLarge(`payload is ${bytes} bytes; the limit is ${MAX_SIGNAL_PAYLOAD_BYTES}`);
    const { view, promoted, ended, failedRun } = await this.sql.transaction(async (tx) => {
      const run = await this.waits.lockRun(tx, runId);
      if (!run) throw notFound('run');
      if (run.status !== 'pending' && run.status !== 'running') throw invalidState(`run ${runId} is ${run.status}; signals go to pending or running runs`);
      const [row] = await tx.query(`
        INSERT INTO drover.signals (run_id, name, payload, actor) VALUES ($1, $2, $3::jsonb, $4)
        RETURNING id::text, created_at, NOT EXISTS (SELECT 1 FROM drover.signals p WHERE p.run_id = $1 AND p.name = $2) AS first`,
      [runId, name, JSON.stringify(value), actor]);
      const first = await this.waits.firstSignal(tx, runId, name);
      const waiting = await tx.query(`
        SELECT id, name, queue, generation FROM drover.steps
         WHERE run_id = $1 AND status = 'queued' AND processor = $2 AND options->'waitFor'->>'signal' = $3 ORDER BY id`,
      [runId, WAIT_PROCESSORS.waitFor, name]);
      const promotedSteps: ReadyStep[] = [];
      const endedSteps: Array<{ id: string; name: string; queue: string; generation: number }> = [];
      let runFailed = false;
      for (const step of waiting) {
        const lease = await this.waits.claim(tx, step.id, step.generation, actor, null);
        if (!lease) continue;
        const outcome = await this.waits.succeedClaimed(tx, step.id, lease, first?.payload ?? value, actor);
        if (!outcome) continue;
        endedSteps.push(step);
        promotedSteps.push(...outcome.promoted);
        if (outcome.runStatus === 'failed') runFailed = true;
      }
      await appendAudit(tx, runId, actor, [['run.signal_received', null, { signal: name, first: row.first, bytes, delivered: endedSteps.map((s) => s.name) }]]);
      return {
        view: { id: row.id, runId, signal: name, actor, createdAt: isoTime(row.created_at)!, first: row.first, delivered: endedSteps.map((s) => s.name) },
        promoted: promotedSteps, ended: endedSteps, failedRun: runFailed,
      };
    });
    await this.dispatcher.enqueue(promoted);
    // The ended steps' delayed jobs would only find them finished: removed now (best effort; the reconciler removes the rest).
    await this.dispatcher.remove(ended);
    if (failedRun) await new OnFailure(this.sql, this.dispatcher, actor).runFailed(runId);
    return view;
  }
}
