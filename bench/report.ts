import * as fs from 'node:fs';
import * as os from 'node:os';
import { Client } from 'pg';
import IORedis from 'ioredis';
import type { Services } from '../test/harness/services';
import type { BenchOptions } from './run';
import { fmt, summarise, type Summary } from './stats';
import { baselineOf, isDrover, SYSTEM_LABELS, type SystemId } from './systems';

/** metric → system → one value per measured round. */
export type Results = Record<string, Partial<Record<SystemId, number[]>>>;

/** Rows of the table, in order. */
const METRICS: Array<{ key: string; label: string; unit: string; higherIsBetter: boolean }> = [
  { key: 'tp1', label: '1. throughput, 1 worker process', unit: 'steps/s', higherIsBetter: true },
  { key: 'tp2', label: '1. throughput, 2 worker processes', unit: 'steps/s', higherIsBetter: true },
  { key: 'dag', label: '2. DAG 1 → 1,000 → 1, time to finish', unit: 'ms', higherIsBetter: false },
  { key: 'lat50', label: '3. chain of 200, completion → next start, p50', unit: 'ms', higherIsBetter: false },
  { key: 'lat99', label: '3. chain of 200, completion → next start, p99', unit: 'ms', higherIsBetter: false },
  { key: 'big', label: '4. create one 1,000-step run', unit: 'ms', higherIsBetter: false },
  { key: 'create', label: '4. create 10,000 runs (createRuns) / enqueue 10,000 jobs (bulk)', unit: 'per s', higherIsBetter: true },
  { key: 'growth', label: '5. throughput, 1 process, with history in the database', unit: 'steps/s', higherIsBetter: true },
  { key: 'rss', label: '6. peak RSS of a worker process during 1', unit: 'MB', higherIsBetter: false },
  { key: 'cpuw', label: 'CPU per step in 1: worker process(es), incl. the client side of Redis/Postgres calls', unit: 'µs', higherIsBetter: false },
  { key: 'cpupg', label: 'CPU per step in 1: Postgres server (every backend)', unit: 'µs', higherIsBetter: false },
  { key: 'cpuredis', label: 'CPU per step in 1: Redis server', unit: 'µs', higherIsBetter: false },
];

/** What the report says about the machine. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  redis: string;
  versions: Record<string, string>;
  loadBefore?: number[];
  loadAfter?: number[];
  elapsedS?: number;
}

export async function describeMachine(services: Services): Promise<Machine> {
  const pg = new Client({ connectionString: services.adminUrl });
  await pg.connect();
  const { rows } = await pg.query(`SHOW server_version`);
  await pg.end();
  const redis = new IORedis(services.redis.url);
  const info = await redis.info('server');
  redis.disconnect();
  const version = (name: string) => {
    try {
      return JSON.parse(fs.readFileSync(`${process.cwd()}/node_modules/${name}/package.json`, 'utf8')).version as string;
    } catch {
      return '?';
    }
  };
  let osName = `${os.type()} ${os.release()}`;
  try {
    osName = /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch { /* not Linux */ }
  return {
    cpu: os.cpus()[0]?.model ?? '?',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    os: osName,
    node: process.version,
    postgres: rows[0].server_version,
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? '?',
    versions: Object.fromEntries(['bullmq', 'ioredis', 'pg', 'pg-boss', 'graphile-worker'].map((n) => [n, version(n)])),
  };
}

function cell(s: Summary | undefined, base: Summary | undefined, showRatio: boolean): string {
  if (!s) return '—';
  const range = s.n > 1 ? ` (${fmt(s.min)}–${fmt(s.max)})` : '';
  // No ratio against a baseline of (almost) nothing, such as raw BullMQ's Postgres CPU on Redis.
  const ratio = showRatio && base && base.median >= 1 ? ` · ${(s.median / base.median).toFixed(2)}×` : '';
  return `${fmt(s.median)}${range}${ratio}`;
}

/** The report: the table, the targets, the machine and the command. */
export function renderReport(results: Results, options: BenchOptions, machine: Machine, command: string): string {
  const systems = options.systems;
  const summary = (metric: string, system: SystemId) => summarise(results[metric]?.[system] ?? []);
  const lines: string[] = [];
  lines.push(`| workload | unit | ${systems.map((s) => SYSTEM_LABELS[s]).join(' | ')} |`);
  lines.push(`|---|---|${systems.map(() => '---').join('|')}|`);
  for (const m of METRICS) {
    if (!results[m.key]) continue;
    const row = systems.map((s) => {
      const base = summary(m.key === 'growth' ? 'tp1' : m.key, baselineOf(s));
      return cell(summary(m.key, s), base, s !== baselineOf(s) && m.key !== 'rss');
    });
    lines.push(`| ${m.label} | ${m.unit} | ${row.join(' | ')} |`);
  }
  const out: string[] = [];
  out.push(`Median of ${options.rounds} rounds after a warm-up (min–max in brackets). The ratio (·) is to raw BullMQ on the`,
    `same store: BullMQ (Redis) for drover (Redis), BullMQ (PG backend) for the others; growth is compared with BullMQ's workload 1.`,
    `Size: ${fmt(options.size)} jobs or single-step runs per throughput round; concurrency ${options.concurrency} per worker process for every system;`,
    `growth history: ${fmt(options.history)} finished steps (${fmt(Math.ceil(options.history / 5))} runs) plus their audit events.`,
    `Postgres fsync: ${options.fsync ? 'on' : 'off (fsync, synchronous_commit and full_page_writes off), for every system alike'}.`, '');
  out.push(...lines, '');
  out.push('**Targets**', '', '| target | measured | met |', '|---|---|---|');
  const med = (metric: string, s: SystemId) => summary(metric, s)?.median;
  const target = (label: string, measured: number | undefined, text: (v: number) => string, ok: (v: number) => boolean) => {
    if (measured === undefined || !Number.isFinite(measured)) return;
    out.push(`| ${label} | ${text(measured)} | ${ok(measured) ? 'yes' : '**no**'} |`);
  };
  const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a / b : undefined);
  target('drover (Redis) ≥ 25% of raw BullMQ (Redis), workload 1 (aim 50%)', ratio(med('tp1', 'drover-redis'), med('tp1', 'bullmq-redis')), pct, (v) => v >= 0.25);
  target('drover (PG) ≥ 70% of raw BullMQ (PG backend), workload 1', ratio(med('tp1', 'drover-pg'), med('tp1', 'bullmq-pg')), pct, (v) => v >= 0.7);
  for (const s of ['drover-redis', 'drover-pg'] as const) {
    target(`${SYSTEM_LABELS[s]} beats graphile-worker, workload 1`, ratio(med('tp1', s), med('tp1', 'graphile-worker')), (v) => `${v.toFixed(2)}×`, (v) => v > 1);
  }
  target('drover (Redis) matches pg-boss, workload 1 (aim)', ratio(med('tp1', 'drover-redis'), med('tp1', 'pg-boss')), (v) => `${v.toFixed(2)}×`, (v) => v >= 1);
  target('chain latency on Redis p50 ≤ 2 ms', med('lat50', 'drover-redis'), (v) => `${fmt(v)} ms`, (v) => v <= 2);
  target('chain latency on Redis p99 ≤ 10 ms', med('lat99', 'drover-redis'), (v) => `${fmt(v)} ms`, (v) => v <= 10);
  for (const s of systems.filter(isDrover)) {
    target(`${SYSTEM_LABELS[s]}: 1,000-step run created in ≤ 250 ms`, med('big', s), (v) => `${fmt(v)} ms`, (v) => v <= 250);
    target(`${SYSTEM_LABELS[s]}: createRuns ≥ 5,000 runs/s`, med('create', s), (v) => `${fmt(v)}/s`, (v) => v >= 5000);
    target(`${SYSTEM_LABELS[s]}: growth within 10% of workload 1`, ratio(med('growth', s), med('tp1', s)), pct, (v) => v >= 0.9);
    target(`${SYSTEM_LABELS[s]}: worker peak RSS ≤ 200 MB`, med('rss', s), (v) => `${fmt(v)} MB`, (v) => v <= 200);
  }
  out.push('', '**Machine**', '',
    `- ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; ${machine.os}`,
    `- Node ${machine.node}; PostgreSQL ${machine.postgres} (embedded, one server for every system); Redis ${machine.redis}`,
    `- ${Object.entries(machine.versions).map(([n, v]) => `${n} ${v}`).join(', ')}`);
  if (machine.loadBefore) {
    out.push(`- load average before / after: ${machine.loadBefore.map((l) => l.toFixed(2)).join(' ')} / ${machine.loadAfter?.map((l) => l.toFixed(2)).join(' ')}; the run took ${fmt(machine.elapsedS ?? NaN)} s`);
  }
  out.push('', `Command: \`${command}\``);
  return out.join('\n');
}

const BEGIN = '<!-- bench:begin (written by npm run bench) -->';
const END = '<!-- bench:end -->';

/** Replaces the generated part of BENCHMARKS.md, keeping the hand-written notes around it. */
export function writeBenchmarksFile(file: string, report: string): void {
  const block = `${BEGIN}\n${report}\n${END}`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `# Benchmarks\n\n${BEGIN}\n${END}\n`;
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  text = a >= 0 && b > a ? text.slice(0, a) + block + text.slice(b + END.length) : `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, text);
}
