import type { Pool } from 'pg';
import { NonRetryableError } from '../src/errors';
import { withInfraRetry } from '../src/infra/retry';
import type { Processor, ProcessorContext, WorkflowDefinition } from '../src/types';

/**
 * The workflows of the chaos load: chains, diamonds, fan-out/fan-in, flaky
 * steps, steps that fail for good, slow steps (the targets of cancels), a
 * gate that fails until the producer opens it (the targets of resumes),
 * steps with a single attempt, joins whose branches fail and succeed at the
 * same moment, steps held until the producer cancels their run, and the
 * waits of CONTRACT §7: a map step, a child run, a durable sleep and a signal
 * the producer sends while the faults go on.
 */

/** Kinds of run the producers start; each implies an outcome the checker verifies. */
export const RUN_KINDS = ['chain', 'diamond', 'fanout', 'flaky', 'fatal', 'slow', 'cancel', 'resume', 'delayed', 'cancel-resume', 'once', 'join-race', 'cancel-race', 'map', 'child', 'sleep', 'signal'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

/** Runs a scenario starts itself (not drawn from the mix): long-delayed runs it cancels at the end. */
export type ExtraKind = 'probe' | 'backlog';

/**
 * The reconciler's batch in the chaos workers: small, so the ordinary load and
 * the backlog scenario hold more live rows than one batch.
 */
export const RECONCILER_BATCH_SIZE = 20;

/** Branches of a `join-race` run that meet before finishing together (one of them fails). */
export const JOIN_BRANCHES = ['ok1', 'ok2', 'bad'];

/** Leaves of a `cancel-race` run, held until the producer releases them and cancels the run at once. */
export const RACE_LEAVES = 6;

/** Every step retries with short fixed backoff; lost attempts (kills, stalls) count too. */
const RETRY = { attempts: 10, backoff: { type: 'fixed' as const, delayMs: 200 } };

const fanWidth = 8;

/** How long a `sleep` run's nap lasts; the checker verifies no nap ended earlier. */
export const SLEEP_MS = 1500;

/** Items of a `map` run's map step. */
export const MAP_ITEMS = 6;

/** Workflow definitions by run kind (cancel runs the slow workflow). */
export const CHAOS_WORKFLOWS: WorkflowDefinition[] = [
  {
    name: 'chaos-chain',
    steps: ['a', 'b', 'c', 'd'].map((name, i, all) => ({ name, processor: 'chaos.work', ...RETRY, ...(i ? { dependsOn: [all[i - 1]] } : {}) })),
  },
  {
    name: 'chaos-diamond',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'b', processor: 'chaos.work', dependsOn: ['a'], ...RETRY },
      { name: 'c', processor: 'chaos.work', dependsOn: ['a'], ...RETRY },
      { name: 'd', processor: 'chaos.work', dependsOn: ['b', 'c'], ...RETRY },
    ],
  },
  {
    name: 'chaos-fanout',
    steps: [
      { name: 'root', processor: 'chaos.work', ...RETRY },
      ...Array.from({ length: fanWidth }, (_, i) => ({ name: `leaf${i}`, processor: 'chaos.work', dependsOn: ['root'], ...RETRY })),
      { name: 'join', processor: 'chaos.work', dependsOn: Array.from({ length: fanWidth }, (_, i) => `leaf${i}`), ...RETRY },
    ],
  },
  {
    name: 'chaos-flaky',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'flaky', processor: 'chaos.flaky', dependsOn: ['a'], ...RETRY },
      { name: 'c', processor: 'chaos.work', dependsOn: ['flaky'], ...RETRY },
    ],
  },
  {
    // fatal fails for good: after1 and after2 are skipped; the ok branch still succeeds.
    name: 'chaos-fatal',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'fatal', processor: 'chaos.fatal', dependsOn: ['a'], ...RETRY },
      { name: 'after1', processor: 'chaos.work', dependsOn: ['fatal'], ...RETRY },
      { name: 'after2', processor: 'chaos.work', dependsOn: ['after1'], ...RETRY },
      { name: 'ok', processor: 'chaos.work', dependsOn: ['a'], ...RETRY },
    ],
  },
  {
    name: 'chaos-slow',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'slow', processor: 'chaos.slow', dependsOn: ['a'], queue: 'slow', ...RETRY },
      { name: 'b', processor: 'chaos.work', dependsOn: ['slow'], ...RETRY },
    ],
  },
  {
    // gate fails for good until the producer opens it; then a resume makes the run succeed.
    name: 'chaos-resume',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'gate', processor: 'chaos.gate', dependsOn: ['a'], ...RETRY },
      { name: 'b', processor: 'chaos.work', dependsOn: ['gate'], ...RETRY },
    ],
  },
  {
    // A single attempt each: a start replayed after a lost reply must not burn it.
    name: 'chaos-once',
    steps: ['a', 'b', 'c'].map((name, i, all) => ({ name, processor: 'chaos.work', attempts: 1, ...(i ? { dependsOn: [all[i - 1]] } : {}) })),
  },
  {
    // The branches meet, then one fails for good while the others succeed, into one join.
    name: 'chaos-join-race',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      ...JOIN_BRANCHES.map((name) => ({ name, processor: 'chaos.meet', dependsOn: ['a'], ...RETRY })),
      { name: 'join', processor: 'chaos.work', dependsOn: JOIN_BRANCHES, ...RETRY },
    ],
  },
  {
    // The leaves wait for the producer's release, which comes with a cancel of the run: successes race the cancel.
    name: 'chaos-cancel-race',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      ...Array.from({ length: RACE_LEAVES }, (_, i) => ({ name: `leaf${i}`, processor: 'chaos.hold', dependsOn: ['a'], ...RETRY })),
      { name: 'join', processor: 'chaos.work', dependsOn: Array.from({ length: RACE_LEAVES }, (_, i) => `leaf${i}`), ...RETRY },
    ],
  },
  {
    // A map over the root's items, a few at a time, each element with the step's retries.
    name: 'chaos-map',
    steps: [
      { name: 'root', processor: 'chaos.items', ...RETRY },
      { name: 'each', map: { over: 'root.items' }, processor: 'chaos.work', dependsOn: ['root'], concurrency: 3, ...RETRY },
      { name: 'join', processor: 'chaos.work', dependsOn: ['each'], ...RETRY },
    ],
  },
  {
    // A child run of the chain, whose output the step takes.
    name: 'chaos-child',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'child', run: { workflow: 'chaos-chain', input: 'input' }, dependsOn: ['a'] },
      { name: 'b', processor: 'chaos.work', dependsOn: ['child'], ...RETRY },
    ],
  },
  {
    // A durable sleep: its wake time is in Postgres, whatever happens to the queue and the workers.
    name: 'chaos-sleep',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'nap', sleep: { ms: SLEEP_MS }, dependsOn: ['a'] },
      { name: 'b', processor: 'chaos.work', dependsOn: ['nap'], ...RETRY },
    ],
  },
  {
    // Waits for the producer's signal, sent (sometimes twice, sometimes before the wait) while the faults go on.
    name: 'chaos-signal',
    steps: [
      { name: 'a', processor: 'chaos.work', ...RETRY },
      { name: 'approve', waitFor: { signal: 'approve', timeoutMs: 120_000 }, dependsOn: ['a'] },
      { name: 'b', processor: 'chaos.work', dependsOn: ['approve'], ...RETRY },
    ],
  },
  {
    name: 'chaos-probe',
    steps: [{ name: 'p', processor: 'chaos.work', ...RETRY }],
  },
];

/** The workflow a run kind starts. */
export function workflowOf(kind: RunKind | ExtraKind): string {
  if (kind === 'cancel' || kind === 'cancel-resume') return 'chaos-slow';
  if (kind === 'delayed' || kind === 'backlog') return 'chaos-chain';
  return `chaos-${kind}`;
}

/** The run-level `delayMs` of `delayed` runs: no step may start earlier, whatever happens to the queue. */
export const RUN_DELAY_MS = 4000;

/** The chaos run's own tables: processor executions and opened gates. */
export const CHAOS_SCHEMA_SQL = `
  CREATE SCHEMA IF NOT EXISTS chaos;
  CREATE TABLE IF NOT EXISTS chaos.executions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id uuid NOT NULL,
    run_id uuid NOT NULL,
    attempt int NOT NULL,
    worker text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
  );
  CREATE INDEX IF NOT EXISTS executions_step_idx ON chaos.executions (step_id);
  CREATE TABLE IF NOT EXISTS chaos.gates (run_id uuid PRIMARY KEY);
  CREATE TABLE IF NOT EXISTS chaos.meetings (run_id uuid NOT NULL, step text NOT NULL, PRIMARY KEY (run_id, step));
  CREATE TABLE IF NOT EXISTS chaos.releases (run_id uuid PRIMARY KEY);`;

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason);
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
});

/**
 * The processors. Each records its execution in `chaos.executions` first, so
 * the checker can count executions beyond one per step (at-least-once is
 * allowed; double completion is not).
 */
export function chaosProcessors(pool: Pool, workerName: string): Record<string, Processor> {
  const record = async (ctx: ProcessorContext) => {
    // Bounded: while Postgres is down the attempt fails instead of counting.
    await withInfraRetry(() => pool.query(
      'INSERT INTO chaos.executions (step_id, run_id, attempt, worker) VALUES ($1, $2, $3, $4)',
      [ctx.step.id, ctx.run.id, ctx.step.attempt, workerName]), { maxElapsedMs: 10_000 });
  };
  const work = (minMs: number, maxMs: number): Processor => async (ctx) => {
    await record(ctx);
    await sleep(minMs + Math.floor(Math.random() * (maxMs - minMs)), ctx.signal);
    return { step: ctx.step.name, attempt: ctx.step.attempt };
  };
  return {
    'chaos.work': work(5, 40),
    'chaos.slow': work(800, 2500),
    'chaos.items': async (ctx) => {
      await record(ctx);
      return { items: Array.from({ length: MAP_ITEMS }, (_, i) => i) };
    },
    'chaos.flaky': async (ctx) => {
      await record(ctx);
      await sleep(10, ctx.signal);
      if (ctx.step.attempt <= 2) throw new Error(`flaky failure on attempt ${ctx.step.attempt}`);
      return { attempt: ctx.step.attempt };
    },
    'chaos.fatal': async (ctx) => {
      await record(ctx);
      throw new NonRetryableError('fatal by design');
    },
    'chaos.meet': async (ctx) => {
      await record(ctx);
      // Arrive, then wait (bounded) until every branch has: they finish within one poll of each other.
      await pool.query('INSERT INTO chaos.meetings (run_id, step) VALUES ($1, $2) ON CONFLICT DO NOTHING', [ctx.run.id, ctx.step.name]);
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        const { rows } = await pool.query('SELECT count(*)::int AS n FROM chaos.meetings WHERE run_id = $1', [ctx.run.id]);
        if (rows[0].n >= JOIN_BRANCHES.length) break;
        await sleep(5, ctx.signal);
      }
      if (ctx.step.name === 'bad') throw new NonRetryableError('bad branch fails by design');
      return { met: true };
    },
    'chaos.hold': async (ctx) => {
      await record(ctx);
      // Held (bounded) until the producer releases the run, which it cancels at the same moment.
      const until = Date.now() + 10_000;
      while (Date.now() < until) {
        const { rows } = await pool.query('SELECT 1 FROM chaos.releases WHERE run_id = $1', [ctx.run.id]);
        if (rows.length) break;
        await sleep(10, ctx.signal);
      }
      return { held: true };
    },
    'chaos.gate': async (ctx) => {
      await record(ctx);
      const { rows } = await pool.query('SELECT 1 FROM chaos.gates WHERE run_id = $1', [ctx.run.id]);
      if (rows.length === 0) throw new NonRetryableError('gate closed');
      return { opened: true };
    },
  };
}
