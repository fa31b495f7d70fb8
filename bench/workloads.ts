import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { openProducer } from './producer';
import { now, percentile } from './stats';
import { isDrover, type Target } from './systems';
import type { FromChild, WorkerConfig } from './worker-process';

/** Worker processes of one measurement. */
interface Workers {
  done(): number;
  lastAt(): number;
  /** The first completion in any process (ms since epoch). */
  firstAt(): number;
  go(): void;
  stop(): Promise<Array<Extract<FromChild, { type: 'result' }>>>;
}

const WORKER_SCRIPT = path.join(__dirname, 'worker-process.js');

/** Forks `count` worker processes and resolves once every one is consuming (or waiting for go). */
async function startWorkers(config: WorkerConfig, count: number): Promise<Workers> {
  const children: Array<{ child: ChildProcess; done: number; firstAt: number; lastAt: number; result?: Extract<FromChild, { type: 'result' }> }> = [];
  let failure: Error | undefined;
  const ready: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    // BENCH_CPU_PROF=DIR writes a V8 CPU profile of every worker process into DIR.
    const execArgv = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : [];
    const child = fork(WORKER_SCRIPT, [], { env: { ...process.env, BENCH_WORKER: JSON.stringify(config) }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const entry: (typeof children)[number] = { child, done: 0, firstAt: 0, lastAt: 0 };
    children.push(entry);
    ready.push(new Promise((resolve, reject) => {
      child.on('message', (m: FromChild) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'progress') { entry.done = m.done; entry.firstAt = m.firstAt; entry.lastAt = Math.max(entry.lastAt, m.lastAt); }
        else if (m.type === 'result') entry.result = m;
        else if (m.type === 'error') { failure = new Error(`worker process: ${m.message}`); reject(failure); }
      });
      child.once('exit', (code) => { if (code) { failure ??= new Error(`worker process exited with ${code}`); reject(failure); } });
    }));
  }
  await Promise.all(ready);
  return {
    done: () => { if (failure) throw failure; return children.reduce((s, c) => s + c.done, 0); },
    lastAt: () => Math.max(...children.map((c) => c.lastAt)),
    firstAt: () => Math.min(...children.map((c) => c.firstAt).filter((t) => t > 0)),
    go: () => children.forEach((c) => c.child.send({ type: 'go' })),
    stop: async () => {
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (c.child.exitCode !== null) return resolve();
        const timer = setTimeout(() => c.child.kill('SIGKILL'), 30_000);
        c.child.once('exit', () => { clearTimeout(timer); resolve(); });
        c.child.send({ type: 'stop' });
      })));
      return children.map((c) => c.result!).filter(Boolean);
    },
  };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let postgresPid: number | undefined;
let redisPid: number | undefined;

/** The servers whose CPU time the throughput rounds account: the postmaster (its exited backends add to its cutime) and redis-server. */
export function accountServerCpu(postgres: number | undefined, redis: number | undefined): void {
  postgresPid = postgres;
  redisPid = redis;
}

/** CPU ms of a process and every child it has reaped (Linux; NaN elsewhere). */
function processCpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime, stime, cutime, cstime are fields 14-17 of stat; here offset by the two leading fields.
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return (ticks * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** Runs `work` with a client of its own on `url`, closed afterwards. */
export async function withClient<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** ANALYZE every table of a database. */
const analyze = (databaseUrl: string) => withClient(databaseUrl, (c) => c.query('ANALYZE'));

/** Result of one throughput round. */
export interface ThroughputResult {
  perSecond: number;
  /** Peak RSS of the busiest worker process, MB. */
  peakRssMb: number;
  /** Jobs (or runs) created per second while populating. */
  createdPerSecond: number;
  /** CPU time per step, µs: the worker processes, and Postgres (every backend), while consuming. */
  workerCpuUs: number;
  postgresCpuUs: number;
  redisCpuUs: number;
}

/**
 * Workload 1: `n` jobs (or single-step runs) created first, then consumed by
 * `processes` worker processes already started; steps per second over the
 * steady state, from the first completion to the last (drover: the last run's
 * `finished_at`), so how fast a paused worker wakes up does not count.
 */
export async function throughput(target: Target, n: number, processes: number, concurrency: number, timeoutMs: number): Promise<ThroughputResult> {
  const producer = await openProducer(target);
  try {
    const paused = await producer.pause();
    const c0 = now();
    const runIds = await producer.populate(n);
    const createdPerSecond = n / ((now() - c0) / 1000);
    // Fresh planner statistics for every system (autovacuum would get there in production):
    // without them pg-boss planned its fetch over 20,000 new jobs as a scan of the table.
    await analyze(target.databaseUrl);
    const workers = await startWorkers({ target, concurrency, mode: 'throughput', chainLength: 0 }, processes);
    let results;
    let end: number;
    let t0: number;
    const pgBefore = processCpuMs(postgresPid);
    const redisBefore = processCpuMs(redisPid);
    try {
      if (paused) await producer.resume();
      workers.go();
      await until(() => workers.done() >= n, timeoutMs, `${n} completions on ${target.system}`);
      end = workers.lastAt();
      t0 = workers.firstAt();
      if (isDrover(target.system)) end = await droverFinishedAt(target.databaseUrl, runIds, timeoutMs);
    } finally {
      results = await workers.stop();
    }
    // Backends of the stopped workers are reaped shortly after their connections close.
    await new Promise((r) => setTimeout(r, 200));
    const pgCpu = processCpuMs(postgresPid) - pgBefore;
    const redisCpu = processCpuMs(redisPid) - redisBefore;
    return {
      workerCpuUs: (results.reduce((sum, r) => sum + r.cpuMs, 0) * 1000) / n,
      postgresCpuUs: (pgCpu * 1000) / n,
      redisCpuUs: (redisCpu * 1000) / n,
      perSecond: (n - 1) / ((end - t0) / 1000),
      peakRssMb: Math.max(...results.map((r) => r.maxRssKb)) / 1024,
      createdPerSecond,
    };
  } finally {
    await producer.close();
  }
}

/** Waits until every run succeeded; returns the last `finished_at` (ms since epoch). */
async function droverFinishedAt(databaseUrl: string, runIds: string[], timeoutMs: number): Promise<number> {
  return withClient(databaseUrl, async (client) => {
    let last = 0;
    await until(async () => {
      const { rows } = await client.query(
        `SELECT count(*) FILTER (WHERE status = 'succeeded')::int AS ok, count(*) FILTER (WHERE status IN ('failed', 'cancelled'))::int AS bad,
                extract(epoch FROM max(finished_at)) * 1000 AS last
           FROM drover.runs WHERE id = ANY ($1::uuid[])`, [runIds]);
      if (rows[0].bad) throw new Error(`${rows[0].bad} runs did not succeed`);
      last = Number(rows[0].last);
      return rows[0].ok === runIds.length;
    }, timeoutMs, 'every run to finish');
    return last;
  });
}

/** Workload 3: a chain; gaps from one link's end to the next link's start, ms. */
export async function chainLatency(target: Target, length: number, concurrency: number, timeoutMs: number): Promise<{ p50: number; p99: number }> {
  const producer = await openProducer(target);
  try {
    const workers = await startWorkers({ target, concurrency, mode: 'chain', chainLength: length }, 1);
    let results;
    try {
      workers.go();
      // Let pull-based systems settle into their idle loop before the chain starts.
      await new Promise((r) => setTimeout(r, 300));
      await producer.startChain();
      await until(() => workers.done() >= length, timeoutMs, `a chain of ${length} on ${target.system}`);
    } finally {
      results = await workers.stop();
    }
    const marks = results.flatMap((r) => r.marks).sort((a, b) => a[0] - b[0]);
    if (marks.length < length) throw new Error(`chain: only ${marks.length} of ${length} links recorded`);
    const gaps: number[] = [];
    for (let i = 1; i < marks.length; i++) gaps.push(marks[i][1] - marks[i - 1][2]);
    return { p50: percentile(gaps, 50), p99: percentile(gaps, 99) };
  } finally {
    await producer.close();
  }
}

/** Workload 2 (drover): one run of 1 → width → 1; ms from creation to finish (database clock). */
export async function fanRun(target: Target, concurrency: number, timeoutMs: number): Promise<number> {
  const producer = await openProducer(target);
  try {
    const workers = await startWorkers({ target, concurrency, mode: 'throughput', chainLength: 0 }, 1);
    try {
      const run = await producer.drover!.createRun({ workflow: 'fan1000' });
      const finished = await producer.drover!.waitForRun(run.id, { timeoutMs, pollMs: 5 });
      if (finished.status !== 'succeeded') throw new Error(`fan run ${finished.status}`);
      const { rows: [row] } = await withClient(target.databaseUrl, (c) => c.query(
        `SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms FROM drover.runs WHERE id = $1`, [run.id]));
      return Number(row.ms);
    } finally {
      await workers.stop();
    }
  } finally {
    await producer.close();
  }
}

/** Workload 4 (drover): ms to create one 1,000-step run, and runs per second through createRuns. */
export async function creation(target: Target, runs: number): Promise<{ bigRunMs: number; runsPerSecond: number }> {
  const producer = await openProducer(target);
  try {
    const t0 = now();
    await producer.drover!.createRun({ workflow: 'fan998' });
    const bigRunMs = now() - t0;
    const t1 = now();
    await producer.populate(runs);
    return { bigRunMs, runsPerSecond: runs / ((now() - t1) / 1000) };
  } finally {
    await producer.close();
  }
}
