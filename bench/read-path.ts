/**
 * `npm run bench:read`: the operator's read path on a big database. Seeds a
 * million runs and ten million steps (see `read-seed.ts`), serves them with
 * `drover server`'s app, and measures what an operator's browser asks for: the
 * first page of the runs list, filtered pages, searches, a 1,000-step run page;
 * then the step hot path with and without browsers watching live, side by side
 * in one run. Prints a table; `--write` puts it into BENCHMARKS.md.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { Drover } from '../src/drover';
import { startServer } from '../src/http/server';
import { databaseUrl, startServices, TEMPLATE_DB } from '../test/harness/services';
import { seedReadPath, type ReadSeed } from './read-seed';
import { fmt, median, now, percentile } from './stats';
import { WORKFLOWS } from './systems';
import { throughput, withClient } from './workloads';

interface ReadOptions {
  runs: number;
  stepsPerRun: number;
  bigRunSteps: number;
  samples: number;
  watchers: number;
  /** Single-step runs per hot-path round. */
  size: number;
  rounds: number;
  write: boolean;
}

function parseArgs(argv: string[]): ReadOptions {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const int = (name: string, fallback: number) => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} must be a positive whole number (got ${raw})`);
    return n;
  };
  const quick = argv.includes('--quick');
  return {
    runs: int('runs', quick ? 50_000 : 1_000_000),
    stepsPerRun: int('steps-per-run', 10),
    bigRunSteps: int('big-run-steps', 1000),
    samples: int('samples', 20),
    watchers: int('watchers', 10),
    size: int('size', quick ? 4000 : 10_000),
    rounds: int('rounds', 2),
    write: argv.includes('--write'),
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** The pages and API reads an operator's browser makes, by label. */
function readTargets(seed: ReadSeed): Array<[label: string, path: string]> {
  const q = encodeURIComponent;
  return [
    ['runs list, first page (dashboard)', '/'],
    ['runs list, status=failed (dashboard)', '/?status=failed'],
    ['runs list, workflow + workspace with 100,000 runs (dashboard)', '/?workflow=crawl&workspace=ws2'],
    ['runs list, workflow + workspace with no run (dashboard)', '/?workflow=crawl&workspace=ws3'],
    ['search by run id (dashboard)', `/?q=${q(seed.someRunId)}`],
    ['search by idempotency key (dashboard)', `/?q=${q(seed.someIdempotencyKey)}`],
    ['1,000-step run page (dashboard)', `/runs/${seed.bigRunId}`],
    ['GET /api/runs (first page)', '/api/runs'],
    ['GET /api/runs?status=failed', '/api/runs?status=failed'],
    ['GET /api/runs?workflow=crawl&workspace=ws3 (no run)', '/api/runs?workflow=crawl&workspace=ws3'],
    ['GET /api/runs/:id (1,000 steps)', `/api/runs/${seed.bigRunId}`],
  ];
}

/** GETs `url` and resolves with the status and the time to the last byte. */
function timedGet(url: string): Promise<{ status: number; ms: number; bytes: number }> {
  const t = now();
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { accept: url.includes('/api/') ? 'application/json' : 'text/html' } }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => { bytes += d.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: now() - t, bytes }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** Browsers watching live: SSE connections kept open, counting the events they get. */
function openWatchers(base: string, ssePath: string, count: number): { events(): number; close(): void } {
  let events = 0;
  const requests: http.ClientRequest[] = [];
  for (let i = 0; i < count; i++) {
    const req = http.get(`${base}${ssePath}`, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) throw new Error(`${ssePath} answered ${res.statusCode}`);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { events += (chunk.match(/^data:/gm) ?? []).length; });
      res.on('error', () => undefined);
    });
    req.on('error', () => undefined);
    requests.push(req);
  }
  return { events: () => events, close: () => requests.forEach((r) => r.destroy()) };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const started = now();
  const services = await startServices({ fsync: false, maxConnections: 300 });
  process.once('SIGINT', () => { void services.stop().finally(() => process.exit(130)); });
  const rows: string[] = [];
  let drover: Drover | undefined;
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    await withClient(services.adminUrl, (c) => c.query(`CREATE DATABASE readpath TEMPLATE ${TEMPLATE_DB} STRATEGY FILE_COPY`));
    const url = databaseUrl(services.adminUrl, 'readpath');
    const t0 = now();
    const client = new Client({ connectionString: url });
    await client.connect();
    const seed = await seedReadPath(client, options.runs, options.stepsPerRun, options.bigRunSteps).finally(() => client.end());
    log(`seeded ${seed.runs.toLocaleString('en')} runs and ${seed.steps.toLocaleString('en')} steps in ${((now() - t0) / 1000).toFixed(0)} s`);

    drover = await Drover.connect({ databaseUrl: url, redisUrl: services.redis.url, namespace: 'readpath' });
    await drover.registerWorkflows(WORKFLOWS);
    server = await startServer({ drover, auth: false, port: 0 });

    rows.push('| read | p50 ms | p95 ms | max ms | bytes |', '|---|---:|---:|---:|---:|');
    for (const [label, p] of readTargets(seed)) {
      for (let i = 0; i < 3; i++) await timedGet(`${server.url}${p}`); // warm: plans, caches
      const times: number[] = [];
      let last = { status: 0, ms: 0, bytes: 0 };
      for (let i = 0; i < options.samples; i++) {
        last = await timedGet(`${server.url}${p}`);
        if (last.status !== 200) throw new Error(`${p} answered ${last.status}`);
        times.push(last.ms);
      }
      rows.push(`| ${label} | ${fmt(median(times))} | ${fmt(percentile(times, 95))} | ${fmt(Math.max(...times))} | ${last.bytes.toLocaleString('en')} |`);
      log(rows[rows.length - 1]);
    }

    // The hot path with and without watchers, alternating, on this big database.
    const ssePath = '/events';
    const tp: Record<'none' | 'watched', number[]> = { none: [], watched: [] };
    let seen = 0;
    let seq = 0;
    const target = () => ({ system: 'drover-redis' as const, databaseUrl: url, redisUrl: services.redis.url, queue: `rp${++seq}` });
    await throughput(target(), 2000, 1, 50, 300_000); // warm-up
    for (let round = 0; round < options.rounds; round++) {
      for (const mode of round % 2 ? (['watched', 'none'] as const) : (['none', 'watched'] as const)) {
        const watchers = mode === 'watched' ? openWatchers(server.url, ssePath, options.watchers) : undefined;
        try {
          tp[mode].push((await throughput(target(), options.size, 1, 50, 300_000)).perSecond);
        } finally {
          seen += watchers?.events() ?? 0;
          watchers?.close();
        }
        log(`hot path (${mode}): ${fmt(tp[mode][tp[mode].length - 1])} steps/s`);
      }
    }
    rows.push('', '| step hot path (single-step runs, drover on Redis, 1 worker process, concurrency 50) | steps/s (median) | rounds |', '|---|---:|---|');
    rows.push(`| nobody watching | ${fmt(median(tp.none))} | ${tp.none.map(fmt).join(', ')} |`);
    rows.push(`| ${options.watchers} browsers watching \`${ssePath}\` (${seen.toLocaleString('en')} events delivered) | ${fmt(median(tp.watched))} | ${tp.watched.map(fmt).join(', ')} |`);
  } finally {
    await server?.close();
    await drover?.close();
    await services.stop();
  }
  const cpu = os.cpus();
  const machine = `${os.type()} ${os.release()}, ${cpu.length} × ${cpu[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const report = [
    `Command: \`npm run bench:read -- ${process.argv.slice(2).join(' ')}\``.replace(/ -- $/, ''), '',
    `Machine: ${machine}; ${new Date().toISOString()}; total ${((now() - started) / 1000).toFixed(0)} s`, '',
    `Database: ${options.runs.toLocaleString('en')} runs × ${options.stepsPerRun} steps, plus one run of ${options.bigRunSteps} steps; `
      + `each read sampled ${options.samples} times after 3 warm-ups, sequentially, over loopback HTTP (time to last byte).`, '',
    ...rows,
  ].join('\n');
  process.stdout.write(`${report}\n`);
  if (options.write) {
    const file = path.join(__dirname, '../../BENCHMARKS.md');
    const begin = '<!-- bench:read:begin (written by npm run bench:read -- --write) -->';
    const end = '<!-- bench:read:end -->';
    const text = fs.readFileSync(file, 'utf8');
    const block = `${begin}\n${report}\n${end}`;
    const i = text.indexOf(begin);
    const j = text.indexOf(end);
    fs.writeFileSync(file, i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n## The console's read path\n\n${block}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`bench:read failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
