import type { Pool } from 'pg';
import { withInfraRetry } from '../src/infra/retry';
import { RACE_LEAVES, RUN_DELAY_MS, RUN_KINDS, workflowOf, type ExtraKind, type RunKind } from './workflows';

/** What a producer knows about one run it asked for. */
export interface RunRecord {
  key: string;
  kind: RunKind | ExtraKind;
  /** Every run id the API answered for this key (more than one would break idempotency). */
  ids: Set<string>;
  /** Submissions sent for the key (retries and deliberate duplicates). */
  submissions: number;
  /** Cancel: `acked` (200), `late` (409 on the only request: the run had finished), `unknown` (a 409 after a lost answer, or no answer). */
  cancel?: 'acked' | 'late' | 'unknown';
  /** Resume: whether the retry request was accepted. */
  resumed?: boolean;
  /** Signal runs: how many signals the API accepted (201). */
  signalled?: number;
  /** Why the producer gave up on this run, if it did. */
  gaveUp?: string;
}

/** Relative frequency of each kind in the load. */
const WEIGHTS: Record<RunKind, number> = {
  chain: 3, diamond: 2, fanout: 1, flaky: 2, fatal: 1, slow: 1, cancel: 2, resume: 1, delayed: 2, 'cancel-resume': 1, once: 2, 'join-race': 1, 'cancel-race': 1,
  map: 1, child: 1, sleep: 1, signal: 2,
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class HttpStatusError extends Error {
  constructor(readonly status: number, readonly body: unknown) {
    super(`HTTP ${status}: ${JSON.stringify(body).slice(0, 200)}`);
  }
}

/**
 * Producers: a steady stream of runs over the HTTP API with idempotency keys,
 * retrying on network errors and 5xx (the API server may be dead, Postgres
 * restarting, Redis paused), plus cancels and resumes issued mid-flight.
 */
export class Producer {
  readonly records = new Map<string, RunRecord>();
  readonly followUps = new Set<Promise<void>>();
  requests = 0;
  retries = 0;
  private seq = 0;

  constructor(
    private readonly apiUrl: string,
    private readonly scenario: string,
    private readonly pool: Pool,
    private readonly retryDeadlineMs = 90_000,
  ) {}

  /** Holds `ratePerSec` new runs a second for `durationMs`, at most `maxInFlight` submissions at once. */
  async load(ratePerSec: number, durationMs: number, maxInFlight = 40): Promise<void> {
    const end = Date.now() + durationMs;
    const inFlight = new Set<Promise<void>>();
    const interval = 1000 / ratePerSec;
    let next = Date.now();
    while (Date.now() < end) {
      if (inFlight.size < maxInFlight) {
        const p: Promise<void> = this.submit(pickKind()).then(() => undefined, () => undefined).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      next += interval;
      await sleep(Math.max(0, next - Date.now()));
    }
    await Promise.all(inFlight);
  }

  /** Waits for every cancel and resume still in progress. */
  async drain(): Promise<void> {
    while (this.followUps.size) await Promise.all([...this.followUps]);
  }

  /**
   * Starts one run of `kind` (and its follow-up: cancel or resume). Resolves
   * with its id once accepted. `delayMs` overrides the kind's run delay.
   */
  async submit(kind: RunKind | ExtraKind, options: { delayMs?: number } = {}): Promise<string | undefined> {
    const key = `${this.scenario}-${kind}-${++this.seq}`;
    const record: RunRecord = { key, kind, ids: new Set(), submissions: 0 };
    this.records.set(key, record);
    const delayMs = options.delayMs ?? (kind === 'delayed' ? RUN_DELAY_MS : 0);
    const send = async () => {
      record.submissions++;
      const run = await this.call('POST', '/api/runs', { workflow: workflowOf(kind), input: { kind }, idempotencyKey: key, ...(delayMs ? { delayMs } : {}) }) as { id: string };
      record.ids.add(run.id);
      return run.id;
    };
    let id: string;
    try {
      id = await send();
    } catch (error) {
      record.gaveUp = `create: ${(error as Error).message}`;
      return undefined;
    }
    // A deliberate duplicate now and then: the same key must give the same run.
    if (Math.random() < 0.05) await send().catch(() => undefined);
    if (kind === 'cancel') this.follow(this.cancelLater(record, id));
    if (kind === 'resume') this.follow(this.resumeWhenFailed(record, id));
    if (kind === 'cancel-resume') this.follow(this.cancelLater(record, id).then(() => this.resumeCancelled(record, id)));
    if (kind === 'cancel-race') this.follow(this.cancelAtRelease(record, id));
    if (kind === 'signal') this.follow(this.signalLater(record, id));
    return id;
  }

  /** Cancels every accepted run of `kind` now (retrying like any call); each `record.cancel` says how it went. */
  async cancelAll(kind: RunKind | ExtraKind): Promise<void> {
    const records = [...this.records.values()].filter((r) => r.kind === kind && r.ids.size);
    await Promise.all(records.map((r) => this.cancel(r, [...r.ids][0])));
  }

  /** Submits a probe run and resolves with the milliseconds until it succeeded. */
  async probe(timeoutMs = 90_000): Promise<number> {
    const started = Date.now();
    const id = await this.submit('probe');
    if (!id) return Number.NaN;
    const run = await this.waitFor(id, ['succeeded', 'failed', 'cancelled'], timeoutMs);
    return run === 'succeeded' ? Date.now() - started : Number.NaN;
  }

  private follow(p: Promise<void>): void {
    const tracked = p.catch(() => undefined).finally(() => this.followUps.delete(tracked));
    this.followUps.add(tracked);
  }

  /**
   * Sends the `approve` signal after a random wait (sometimes at once, before
   * the step waits), retrying through the faults; now and then twice (the
   * first wins). A 409 means the run finished before: the checker says whether
   * it should have.
   */
  private async signalLater(record: RunRecord, id: string): Promise<void> {
    await sleep(Math.random() < 0.25 ? 0 : 200 + Math.random() * 3000);
    const times = Math.random() < 0.2 ? 2 : 1;
    for (let i = 0; i < times; i++) {
      try {
        await this.call('POST', `/api/runs/${id}/signals/approve`, { payload: { n: i } });
        record.signalled = (record.signalled ?? 0) + 1;
      } catch (error) {
        if (!(error instanceof HttpStatusError && error.status === 409)) record.gaveUp = `signal: ${(error as Error).message}`;
      }
    }
  }

  private async cancelLater(record: RunRecord, id: string): Promise<void> {
    await sleep(200 + Math.random() * 1500);
    await this.cancel(record, id);
  }

  /**
   * Once most leaves of a `cancel-race` run are running (held), releases them
   * and cancels the run in the same moment: their successes race the cancel.
   */
  private async cancelAtRelease(record: RunRecord, id: string): Promise<void> {
    const until = Date.now() + 20_000;
    while (Date.now() < until) {
      const { rows } = await this.pool.query(`SELECT count(DISTINCT step_id)::int AS n FROM chaos.executions WHERE run_id = $1`, [id]).catch(() => ({ rows: [{ n: 0 }] }));
      if (rows[0].n >= 1 + RACE_LEAVES / 2) break;
      await sleep(20);
    }
    await Promise.all([
      withInfraRetry(() => this.pool.query('INSERT INTO chaos.releases (run_id) VALUES ($1) ON CONFLICT DO NOTHING', [id])).catch(() => undefined),
      this.cancel(record, id),
    ]);
  }

  private async cancel(record: RunRecord, id: string): Promise<void> {
    let attempts = 0;
    const deadline = Date.now() + this.retryDeadlineMs;
    for (;;) {
      attempts++;
      try {
        await this.once('POST', `/api/runs/${id}/cancel`, {});
        record.cancel = 'acked';
        return;
      } catch (error) {
        if (error instanceof HttpStatusError && error.status === 409) {
          record.cancel = attempts === 1 ? 'late' : 'unknown';
          return;
        }
        if (!retryable(error) || Date.now() > deadline) {
          record.cancel = 'unknown';
          record.gaveUp = `cancel: ${(error as Error).message}`;
          return;
        }
        this.retries++;
        await sleep(Math.min(2000, 100 * 2 ** Math.min(attempts, 5)));
      }
    }
  }

  private async resumeWhenFailed(record: RunRecord, id: string): Promise<void> {
    const status = await this.waitFor(id, ['failed', 'succeeded', 'cancelled'], this.retryDeadlineMs);
    if (status !== 'failed') {
      record.gaveUp = `resume: run is ${status}, expected failed`;
      return;
    }
    // Open the gate (the "fix" an operator makes), then resume the run.
    await withInfraRetry(() => this.pool.query('INSERT INTO chaos.gates (run_id) VALUES ($1) ON CONFLICT DO NOTHING', [id]));
    await this.retryRun(record, id, 'failed');
  }

  /** POST retry; a 409 after a lost answer means the first request resumed it. */
  private async retryRun(record: RunRecord, id: string, from: 'failed' | 'cancelled'): Promise<void> {
    try {
      await this.call('POST', `/api/runs/${id}/retry`, {});
      record.resumed = true;
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 409) {
        const run = await this.call('GET', `/api/runs/${id}`) as { status: string };
        record.resumed = run.status !== from;
        if (!record.resumed) record.gaveUp = `resume: 409 while the run is ${from}`;
      } else {
        record.gaveUp = `resume: ${(error as Error).message}`;
      }
    }
  }

  /** Resumes a run cancelled mid-flight (its cancelled steps may still be running somewhere). */
  private async resumeCancelled(record: RunRecord, id: string): Promise<void> {
    if (record.cancel === 'late') return; // it had finished: nothing to resume
    const status = await this.waitFor(id, ['cancelled', 'succeeded', 'failed'], this.retryDeadlineMs);
    if (status !== 'cancelled') return;
    await this.retryRun(record, id, 'cancelled');
  }

  private async waitFor(id: string, statuses: string[], timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        const run = await this.once('GET', `/api/runs/${id}`) as { status: string };
        if (statuses.includes(run.status)) return run.status;
      } catch {
        // the API server may be down: keep polling
      }
      await sleep(250);
    }
    return undefined;
  }

  /** One request with retries on network errors and 5xx, until the deadline. */
  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const deadline = Date.now() + this.retryDeadlineMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, path, body);
      } catch (error) {
        if (!retryable(error) || Date.now() > deadline) throw error;
        this.retries++;
        await sleep(Math.min(2000, 50 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random()));
      }
    }
  }

  private async once(method: string, path: string, body?: unknown): Promise<unknown> {
    this.requests++;
    const res = await fetch(`${this.apiUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const json = await res.json().catch(() => null);
    if (!res.ok) throw new HttpStatusError(res.status, json);
    return json;
  }
}

function retryable(error: unknown): boolean {
  if (error instanceof HttpStatusError) return error.status >= 500 || error.status === 429;
  return true; // network errors, timeouts
}

function pickKind(): RunKind {
  const total = RUN_KINDS.reduce((n, k) => n + WEIGHTS[k], 0);
  let r = Math.random() * total;
  for (const k of RUN_KINDS) {
    r -= WEIGHTS[k];
    if (r < 0) return k;
  }
  return 'chain';
}
