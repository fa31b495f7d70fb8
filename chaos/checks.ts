import * as fs from 'node:fs';
import type { Pool } from 'pg';
import { jobIdOf } from '../src/queue/dispatcher';
import type { QueueBackend } from '../src/queue/queue-backend';
import type { RunRecord } from './producer';
import { JOIN_BRANCHES, MAP_ITEMS, SLEEP_MS } from './workflows';

/** What the checker found after the system settled. */
export interface CheckResult {
  runsAccepted: number;
  runsInDb: number;
  steps: number;
  executions: number;
  /** Executions of a step beyond its recorded outcomes (attempts lost to kills and stalls, then run again). */
  extraExecutions: number;
  runsLost: number;
  doubleCompletions: number;
  violations: string[];
}

const TERMINAL_RUN = ['succeeded', 'failed', 'cancelled'];
const QUEUES = ['default', 'slow'];

/** Waits until no run is open (but those of `exceptRunIds`); resolves with the milliseconds it took, or NaN past the deadline. */
export async function waitForSettle(pool: Pool, timeoutMs: number, exceptRunIds: string[] = []): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    try {
      const { rows } = await pool.query(`SELECT count(*)::int AS open FROM drover.runs
        WHERE status IN ('pending', 'running') AND id <> ALL ($1::uuid[])`, [exceptRunIds]);
      if (rows[0].open === 0) return Date.now() - started;
    } catch {
      // Postgres may still be coming back
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return Number.NaN;
}

/** What the checker allows in a scenario. */
export interface CheckOptions {
  /**
   * The scenario's fault can cut an attempt off (a worker killed or stalled),
   * so a single-attempt step may fail as lost. Elsewhere it must succeed.
   */
  attemptsMayBeLost?: boolean;
}

/**
 * Checks the invariants of ISSUE 8 from Postgres and the queue: every accepted
 * run is terminal with the outcome its kind implies; no step completed twice
 * or after a cancel; one run per idempotency key; no waiting or delayed job of
 * a terminal step; audit trails in causal order per step.
 */
export async function checkInvariants(pool: Pool, backend: QueueBackend, records: Iterable<RunRecord>, options: CheckOptions = {}): Promise<CheckResult> {
  const violations: string[] = [];
  const add = (v: string) => { if (violations.length < 200) violations.push(v); };
  const recs = [...records];
  const runs = new Map<string, any>((await pool.query(`SELECT id, status, idempotency_key FROM drover.runs`)).rows.map((r) => [r.id, r]));
  const stepRows = (await pool.query(`SELECT id, run_id, name, status, generation, error->>'message' AS error_message FROM drover.steps`)).rows;
  const stepsByRun = new Map<string, Map<string, string>>();
  const failuresByRun = new Map<string, string[]>();
  for (const s of stepRows) {
    if (!stepsByRun.has(s.run_id)) stepsByRun.set(s.run_id, new Map());
    stepsByRun.get(s.run_id)!.set(s.name, s.status);
    if (s.status === 'failed') failuresByRun.set(s.run_id, [...(failuresByRun.get(s.run_id) ?? []), `${s.name}: ${s.error_message}`]);
  }

  let runsAccepted = 0;
  let runsLost = 0;
  for (const r of recs) {
    if (r.ids.size > 1) add(`idempotency: key ${r.key} answered with ${r.ids.size} different runs`);
    if (r.gaveUp) add(`producer gave up on ${r.key}: ${r.gaveUp}`);
    if (r.ids.size === 0) continue;
    runsAccepted++;
    const id = [...r.ids][0];
    const run = runs.get(id);
    if (!run || !TERMINAL_RUN.includes(run.status)) {
      runsLost++;
      add(`lost: run ${id} (${r.key}) is ${run ? run.status : 'missing'}`);
      if (run) add(`  its steps, jobs and audit trail: ${await describeRun(pool, backend, id)}`);
      continue;
    }
    if (run.idempotency_key !== r.key) add(`idempotency: run ${id} holds key ${run.idempotency_key}, expected ${r.key}`);
    const steps = stepsByRun.get(id) ?? new Map<string, string>();
    const allSucceeded = [...steps.values()].every((s) => s === 'succeeded');
    const expect = (ok: boolean, what: string) => { if (!ok) add(`outcome: ${r.key} (run ${id}) ${what}; run ${run.status}, steps ${JSON.stringify(Object.fromEntries(steps))}`); };
    switch (r.kind) {
      case 'fatal':
        expect(run.status === 'failed' && steps.get('fatal') === 'failed' && steps.get('after1') === 'skipped'
          && steps.get('after2') === 'skipped' && steps.get('a') === 'succeeded' && steps.get('ok') === 'succeeded',
        'expected failed with fatal failed, after1/after2 skipped, a/ok succeeded');
        break;
      case 'cancel':
      case 'cancel-race':
      case 'backlog':
        if (r.cancel === 'acked') expect(run.status === 'cancelled', 'cancel was acknowledged, expected cancelled');
        else if (r.cancel === 'late') expect(run.status === 'succeeded' && allSucceeded, 'cancel came after the end, expected succeeded');
        else expect(run.status === 'cancelled' || (run.status === 'succeeded' && allSucceeded), 'expected cancelled or succeeded');
        if (run.status === 'cancelled') expect(![...steps.values()].some((s) => ['pending', 'queued', 'running'].includes(s)), 'cancelled run has open steps');
        break;
      case 'cancel-resume':
        expect(run.status === 'succeeded' && allSucceeded, 'cancelled mid-flight then resumed (or finished first): expected succeeded');
        break;
      case 'resume':
        expect(run.status === 'succeeded' && allSucceeded && r.resumed === true, 'expected succeeded after the resume');
        break;
      case 'join-race':
        expect(run.status === 'failed' && steps.get('a') === 'succeeded' && steps.get('join') === 'skipped'
          && JOIN_BRANCHES.every((b) => steps.get(b) === (b === 'bad' ? 'failed' : 'succeeded')),
        'expected failed with bad failed, the other branches succeeded, join skipped');
        break;
      case 'once': {
        // A single attempt is spent only by running it: it may be lost with a killed or stalled worker, nothing else.
        const failures = failuresByRun.get(id) ?? [];
        const lostOnly = options.attemptsMayBeLost === true && run.status === 'failed' && failures.length > 0
          && failures.every((f) => / was lost \(worker died or stalled\)/.test(f))
          && [...steps.values()].every((s) => ['succeeded', 'failed', 'skipped'].includes(s));
        expect((run.status === 'succeeded' && allSucceeded) || lostOnly,
          `expected succeeded${options.attemptsMayBeLost ? ' (or failed with lost attempts only)' : ''}; failures: ${failures.join('; ') || 'none'}`);
        break;
      }
      case 'signal':
        expect(run.status === 'succeeded' && allSucceeded && (r.signalled ?? 0) > 0, 'expected succeeded after the signal');
        break;
      default:
        expect(run.status === 'succeeded' && allSucceeded, 'expected succeeded with every step succeeded');
    }
  }
  for (const run of runs.values()) {
    if (!TERMINAL_RUN.includes(run.status)) add(`open: run ${run.id} (${run.idempotency_key}) is still ${run.status}`);
    const open = [...(stepsByRun.get(run.id) ?? new Map<string, string>())].filter(([, s]) => ['pending', 'queued', 'running'].includes(s));
    if (TERMINAL_RUN.includes(run.status) && open.length) add(`finished with open steps: run ${run.id} is ${run.status} but ${open.map(([n, s]) => `${n} is ${s}`).join(', ')}`);
  }
  // A run's delayMs holds whatever happens to the queue: no step of a delayed run starts earlier.
  const { rows: early } = await pool.query(`
    SELECT r.id, r.idempotency_key, r.delay_ms, extract(epoch FROM (min(e.started) - r.created_at)) * 1000 AS after_ms
      FROM drover.runs r
      JOIN (SELECT run_id, COALESCE((data->>'startedAt')::timestamptz, at) AS started FROM drover.audit_events
             WHERE type = 'step.started' OR type IN ('step.succeeded', 'step.attempt_failed', 'step.failed') AND data ? 'startedAt') e
        ON e.run_id = r.id
     WHERE r.delay_ms > 0 GROUP BY r.id HAVING min(e.started) < r.created_at + make_interval(secs => (r.delay_ms - 50)::double precision / 1000)`);
  for (const e of early) add(`delay: run ${e.id} (${e.idempotency_key}) started a step ${Math.round(e.after_ms)} ms after creation; its delayMs is ${e.delay_ms}`);
  // A durable sleep never wakes early, whatever happened to the queue and the workers.
  const { rows: earlyNaps } = await pool.query(`
    SELECT s.run_id, (s.output->>'sleptMs')::int AS slept FROM drover.steps s
     WHERE s.processor = 'drover:sleep' AND s.status = 'succeeded' AND (s.output->>'sleptMs')::int < $1`, [SLEEP_MS - 50]);
  for (const n of earlyNaps) add(`sleep: run ${n.run_id} slept ${n.slept} ms of ${SLEEP_MS}`);
  // A map's output is its elements' results in order, one per item.
  const { rows: maps } = await pool.query(`
    SELECT m.run_id, jsonb_array_length(m.output) AS n FROM drover.steps m WHERE m.processor = 'drover:map' AND m.status = 'succeeded'`);
  for (const m of maps) if (m.n !== MAP_ITEMS) add(`map: run ${m.run_id} has ${m.n} results of ${MAP_ITEMS}`);
  const { rows: dupKeys } = await pool.query(`
    SELECT idempotency_key, count(*)::int AS n FROM drover.runs WHERE idempotency_key IS NOT NULL GROUP BY 1 HAVING count(*) > 1`);
  for (const d of dupKeys) add(`idempotency: key ${d.idempotency_key} made ${d.n} runs`);
  // A child-run step starts one child per round of attempts (its first, and one per resume of its run):
  // a replayed or taken-over step finds its child instead of starting another.
  const { rows: children } = await pool.query(`
    SELECT k.parent_step_id, k.n, k.resumes FROM (
      SELECT c.parent_step_id, count(*)::int AS n,
             (SELECT count(*)::int FROM drover.audit_events e WHERE e.run_id = c.parent_run_id AND e.type = 'run.retried') AS resumes
        FROM drover.runs c WHERE c.parent_step_id IS NOT NULL GROUP BY c.parent_step_id, c.parent_run_id) k
     WHERE k.n > 1 + k.resumes`);
  for (const c of children) add(`child runs: step ${c.parent_step_id} started ${c.n} children in ${1 + c.resumes} round(s) of attempts`);

  // Causal order per step (and no success twice, or after a cancel), replaying the audit trail.
  const { rows: events } = await pool.query(`
    SELECT id, type, run_id, step_id, data ? 'startedAt' AS with_start FROM drover.audit_events
     WHERE type LIKE 'step.%' AND type <> 'step.log' OR type = 'run.retried' ORDER BY run_id, id`);
  let doubleCompletions = 0;
  const succeededCount = new Map<string, number>();
  let state = new Map<string, { s: string; afterAttemptFailed: boolean }>();
  let currentRun = '';
  for (const e of events) {
    if (e.run_id !== currentRun) { currentRun = e.run_id; state = new Map(); }
    if (e.type === 'run.retried') {
      // failed, cancelled and skipped steps start again (pending or queued; step.queued follows for the ready ones)
      for (const st of state.values()) if (['failed', 'cancelled', 'skipped'].includes(st.s)) st.s = 'pending';
      continue;
    }
    const st = state.get(e.step_id) ?? { s: 'pending', afterAttemptFailed: false };
    state.set(e.step_id, st);
    // An attempt whose start was written with its outcome (the one-write path) goes from queued to its outcome:
    // its running state was never written on its own, so it is replayed as if it had been.
    const oneWrite = e.with_start && st.s === 'queued' && ['step.succeeded', 'step.attempt_failed', 'step.failed'].includes(e.type);
    const from = oneWrite ? 'running' : st.s;
    const bad = (why: string) => add(`order: step ${e.step_id} of run ${e.run_id}: ${e.type} (event ${e.id}) while ${from}${why ? `: ${why}` : ''}`);
    const was = st.afterAttemptFailed;
    st.afterAttemptFailed = false;
    switch (e.type) {
      case 'step.queued': if (from !== 'pending') bad(''); st.s = 'queued'; break;
      case 'step.started': if (from !== 'queued' && from !== 'running') bad(''); st.s = 'running'; break;
      case 'step.attempt_failed': if (from !== 'running') bad(''); st.s = 'queued'; st.afterAttemptFailed = true; break;
      case 'step.requeued': if (from !== 'running') bad(''); st.s = 'queued'; break;
      case 'step.succeeded': {
        if (from !== 'running') bad(from === 'cancelled' ? 'success after cancel' : '');
        const n = (succeededCount.get(e.step_id) ?? 0) + 1;
        succeededCount.set(e.step_id, n);
        if (n === 2) { doubleCompletions++; add(`double completion: step ${e.step_id} of run ${e.run_id}`); }
        st.s = 'succeeded';
        break;
      }
      case 'step.failed': if (from !== 'running' && !(from === 'queued' && was)) bad(''); st.s = 'failed'; break;
      case 'step.skipped': if (from !== 'pending') bad(''); st.s = 'skipped'; break;
      case 'step.cancelled': if (!['pending', 'queued', 'running'].includes(from)) bad(''); st.s = 'cancelled'; break;
      // A map step's elements were created: it waits for them (queued → pending) under a new generation.
      case 'step.map_started': if (from !== 'queued') bad(''); st.s = 'pending'; break;
      default: break; // step.reenqueued is the reconciler's note; it changes no state
    }
  }

  // No waiting, delayed or prioritized job for a step that is terminal (or of an older generation).
  const live = new Set(stepRows.filter((s) => s.status === 'queued' || s.status === 'running').map((s) => jobIdOf(s.id, s.generation)));
  for (const queue of QUEUES) {
    const jobs = await backend.queue(queue).getJobs(['waiting', 'delayed', 'prioritized'], 0, 100_000);
    for (const job of jobs) if (job?.id && !live.has(job.id)) add(`queue: ${queue} holds ${await job.getState()} job ${job.id} of a terminal step`);
  }

  // Beyond one: executions of a step past its recorded outcomes (success, failed attempt, cancel while running).
  const { rows: [exec] } = await pool.query(`
    SELECT (SELECT count(*)::int FROM chaos.executions) AS executions,
           COALESCE((SELECT sum(GREATEST(0, e.n - GREATEST(1, COALESCE(o.n, 0))))::int
              FROM (SELECT step_id, count(*) AS n FROM chaos.executions GROUP BY 1) e
              LEFT JOIN (SELECT step_id, count(*) AS n FROM drover.audit_events
                          WHERE type IN ('step.succeeded', 'step.attempt_failed')
                             OR (type = 'step.cancelled' AND data->>'previous' = 'running') GROUP BY 1) o USING (step_id)), 0) AS beyond`);
  return {
    runsAccepted, runsInDb: runs.size, steps: stepRows.length, executions: exec.executions,
    extraExecutions: exec.beyond, runsLost, doubleCompletions, violations,
  };
}

/** What the Postgres server log says about one scenario. */
export interface LogCheck {
  deadlocks: number;
  violations: string[];
}

/**
 * Reads the Postgres server log from byte `fromByte` (where the scenario
 * began) and flags every `deadlock detected`: Postgres breaks a deadlock by
 * aborting one transaction, which the engine then retries, so the other
 * checks alone would never see it.
 */
export function checkPostgresLog(file: string, fromByte = 0): LogCheck {
  const lines = fs.existsSync(file) ? readFrom(file, fromByte).split('\n') : [];
  const violations: string[] = [];
  lines.forEach((line, i) => {
    if (!line.includes('deadlock detected')) return;
    // Postgres follows the ERROR with a DETAIL naming the processes and the locks they wait for, then their statements.
    const detail = lines.slice(i + 1, i + 4).filter((l) => /DETAIL|^\s*Process \d+ waits/.test(l)).map((l) => l.trim()).join(' | ');
    violations.push(`deadlock: ${line.trim()}${detail ? ` | ${detail}` : ''} (statements in ${file})`);
  });
  return { deadlocks: violations.length, violations };
}

function readFrom(file: string, fromByte: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.max(0, size - fromByte));
    fs.readSync(fd, buffer, 0, buffer.length, fromByte);
    return buffer.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** A lost run's steps and audit trail, for the report. */
async function describeRun(pool: Pool, backend: QueueBackend, runId: string): Promise<string> {
  const { rows: [run] } = await pool.query(`SELECT status, open_steps, failed_steps FROM drover.runs WHERE id = $1`, [runId]);
  const { rows: steps } = await pool.query(`
    SELECT id, name, queue, status, generation, attempt, deps_remaining, worker_id FROM drover.steps WHERE run_id = $1 ORDER BY name`, [runId]);
  for (const s of steps) {
    const jobs: string[] = [];
    for (let g = 0; g <= s.generation; g++) jobs.push(`g${g}:${await backend.queue(s.queue).getJobState(jobIdOf(s.id, g)).catch((e) => String(e))}`);
    s.jobs = jobs.join(',');
  }
  const { rows: events } = await pool.query(`
    SELECT e.type, s.name, e.actor, e.data FROM drover.audit_events e LEFT JOIN drover.steps s ON s.id = e.step_id
     WHERE e.run_id = $1 AND e.type <> 'step.log' ORDER BY e.id`, [runId]);
  return JSON.stringify({ run, steps, events: events.map((e) => `${e.type}${e.name ? `(${e.name})` : ''} by ${e.actor}${e.data ? ` ${JSON.stringify(e.data)}` : ''}`) });
}

