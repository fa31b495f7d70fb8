/**
 * `npm run bench:flow`: the cost of a concurrency-limited step next to an
 * unlimited one in the same run. Each run of `flow-bench` has two root steps
 * with empty processors: `free` (no flow control) and `limited`
 * (`concurrency: { key: 'input.tenant', limit }`, over `--keys` key values).
 * With the default limit the keys never bind (workers' slots run out first),
 * so the difference is what admission, the fenced start and the promotion
 * after each finish cost; `--limit 1` shows the keys binding. Per step kind:
 * steps per second (first queued to last finished) and queue wait (queued →
 * started) percentiles, from the step rows. Prints a table; `--write` puts it
 * into BENCHMARKS.md. One worker process (in this process), on Redis.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Drover } from '../src/drover';
import { databaseUrl, startServices, TEMPLATE_DB } from '../test/harness/services';
import { fmt, median, now } from './stats';
import { withClient } from './workloads';
import type { WorkflowDefinition } from '../src/types';

interface FlowBenchOptions {
  runs: number;
  keys: number;
  limit: number;
  concurrency: number;
  rounds: number;
  write: boolean;
}

function parseArgs(argv: string[]): FlowBenchOptions {
  const int = (name: string, fallback: number) => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} must be a positive whole number (got ${argv[i + 1]})`);
    return n;
  };
  const quick = argv.includes('--quick');
  return {
    runs: int('runs', quick ? 500 : 3000),
    keys: int('keys', 10),
    limit: int('limit', 100),
    concurrency: int('concurrency', 50),
    rounds: int('rounds', quick ? 1 : 3),
    write: argv.includes('--write'),
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

interface KindResult { stepsPerSec: number; waitP50: number; waitP95: number }

async function round(url: string, redisUrl: string, o: FlowBenchOptions, n: number): Promise<Record<'free' | 'limited', KindResult>> {
  const namespace = `flowbench${n}`;
  const wf: WorkflowDefinition = {
    name: 'flow-bench',
    steps: [
      { name: 'free', processor: 'noop' },
      { name: 'limited', processor: 'noop', concurrency: { key: 'input.tenant', limit: o.limit } },
    ],
  };
  const drover = await Drover.connect({ databaseUrl: url, redisUrl, namespace, poolSize: 20 });
  const worker = drover.createWorker({ workflows: [wf], processors: { noop: async () => null }, concurrency: o.concurrency, reconciler: false });
  try {
    await worker.run();
    const marker = new Date();
    for (let i = 0; i < o.runs; i += 500) {
      await drover.createRuns(Array.from({ length: Math.min(500, o.runs - i) }, (_, j) => ({ workflow: 'flow-bench', input: { tenant: `t${(i + j) % o.keys}` } })));
    }
    const deadline = Date.now() + 600_000;
    for (;;) {
      const open = await withClient(url, async (c) => Number((await c.query(`SELECT count(*) AS n FROM drover.runs WHERE created_at >= $1 AND finished_at IS NULL`, [marker])).rows[0].n));
      if (open === 0) break;
      if (Date.now() > deadline) throw new Error(`round ${n}: ${open} runs still open after 10 minutes`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return await withClient(url, async (c) => {
      const rows = (await c.query(`
        SELECT s.name,
               count(*)::int / GREATEST(extract(epoch FROM max(s.finished_at) - min(s.queued_at)), 0.001) AS per_sec,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.started_at - s.queued_at) * 1000) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM s.started_at - s.queued_at) * 1000) AS p95
          FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id
         WHERE r.created_at >= $1 AND s.status = 'succeeded' GROUP BY s.name`, [marker])).rows;
      const of = (name: string): KindResult => {
        const row = rows.find((r) => r.name === name);
        return { stepsPerSec: Number(row?.per_sec ?? 0), waitP50: Number(row?.p50 ?? 0), waitP95: Number(row?.p95 ?? 0) };
      };
      return { free: of('free'), limited: of('limited') };
    });
  } finally {
    await worker.close();
    await drover.close();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const started = now();
  const services = await startServices({ fsync: false, maxConnections: 200 });
  process.once('SIGINT', () => { void services.stop().finally(() => process.exit(130)); });
  try {
    await withClient(services.adminUrl, (c) => c.query(`CREATE DATABASE flowbench TEMPLATE ${TEMPLATE_DB} STRATEGY FILE_COPY`));
    const url = databaseUrl(services.adminUrl, 'flowbench');
    const results: Array<Record<'free' | 'limited', KindResult>> = [];
    for (let n = 1; n <= o.rounds; n++) {
      const r = await round(url, services.redis.url, o, n);
      log(`round ${n}: free ${fmt(r.free.stepsPerSec)} steps/s (wait p50 ${fmt(r.free.waitP50)} ms), limited ${fmt(r.limited.stepsPerSec)} steps/s (wait p50 ${fmt(r.limited.waitP50)} ms)`);
      results.push(r);
    }
    const kinds = [
      ['free', 'unlimited step (no flow control)'],
      ['limited', `concurrency-limited step (key input.tenant over ${o.keys} values, limit ${o.limit})`],
    ] as const;
    const lines = [
      `Command: \`npm run bench:flow --${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}\``,
      '',
      `Machine: ${os.type()} ${os.release()}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; ${new Date().toISOString()}; total ${((now() - started) / 1000).toFixed(0)} s; load average at the end ${os.loadavg().map((l) => l.toFixed(1)).join(', ')}. The machine was shared with other work while this ran (its figures move between rounds).`,
      '',
      `${o.runs.toLocaleString('en')} runs per round, each with both steps as roots (so they are queued together and share the worker); drover on Redis, 1 worker, concurrency ${o.concurrency}; ${o.rounds} rounds.`,
      '',
      '| step | steps/s (median) | rounds | queue wait p50 ms (median) | queue wait p95 ms (median) |',
      '|---|---:|---|---:|---:|',
      ...kinds.map(([k, label]) => `| ${label} | ${fmt(median(results.map((r) => r[k].stepsPerSec)))} | ${results.map((r) => fmt(r[k].stepsPerSec)).join(', ')} | ${fmt(median(results.map((r) => r[k].waitP50)))} | ${fmt(median(results.map((r) => r[k].waitP95)))} |`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (o.write) writeSection(lines.join('\n'));
  } finally {
    await services.stop();
  }
}

/** Replaces (or appends) the bench:flow section of BENCHMARKS.md. */
function writeSection(body: string): void {
  const file = path.join(__dirname, '../../BENCHMARKS.md');
  const begin = '<!-- bench:flow:begin (written by npm run bench:flow -- --write) -->';
  const end = '<!-- bench:flow:end -->';
  let text = fs.readFileSync(file, 'utf8');
  const block = `${begin}\n${body}\n${end}`;
  if (text.includes(begin)) text = text.slice(0, text.indexOf(begin)) + block + text.slice(text.indexOf(end) + end.length);
  else text = `${text.trimEnd()}\n\n## Flow control: a concurrency-limited step next to an unlimited one\n\n${block}\n`;
  fs.writeFileSync(file, text);
}

main().catch((error) => {
  log(`bench:flow failed: ${error?.stack ?? error}`);
  process.exit(1);
});
