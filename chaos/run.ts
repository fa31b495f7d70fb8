import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Pool } from 'pg';
import { QueueBackend } from '../src/queue/queue-backend';
import { checkInvariants, checkPostgresLog, waitForSettle } from './checks';
import { Fleet, Services, stopEverything, type ApiKind } from './cluster';
import { HostNetwork } from './network';
import { Producer } from './producer';
import { machine, table, writeSection, type ScenarioRow } from './report';
import { MIXED_SCENARIO, NETWORK_SCENARIOS, SCENARIOS, type Scenario } from './scenarios';

/** Command-line options of `npm run chaos`. */
interface ChaosOptions {
  quick: boolean;
  soakMinutes?: number;
  only?: string[];
  workers: number;
  concurrency: number;
  api: ApiKind;
  /** Where the queues live: Redis, or BullMQ's PostgreSQL backend (Redis faults are skipped). */
  backend: 'redis' | 'postgres';
  write: boolean;
}

/** Sizes of a run: how long and how hard the load is. */
interface Size { loadMs: number; rate: number; settleMs: number }

const ROOT = path.resolve(__dirname, '..', '..');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (message: string) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${message}`);

function parseArgs(argv: string[]): ChaosOptions {
  const o: ChaosOptions = { quick: false, workers: 3, concurrency: 10, api: 'drover', backend: 'redis', write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new TypeError(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--soak') o.soakMinutes = Number(value());
    else if (a === '--only') o.only = value().split(',');
    else if (a === '--workers') o.workers = Number(value());
    else if (a === '--concurrency') o.concurrency = Number(value());
    else if (a === '--api') o.api = value() as ApiKind;
    else if (a === '--backend') o.backend = value() as ChaosOptions['backend'];
    else if (a === '--no-write') o.write = false;
    else throw new TypeError(`unknown option ${a} (options: --quick, --soak MINUTES, --only a,b, --workers N, --concurrency N, --api drover|stand-in, --backend redis|postgres, --no-write)`);
  }
  if (o.soakMinutes !== undefined && !(o.soakMinutes > 0 && o.soakMinutes <= 24 * 60)) throw new TypeError('--soak needs minutes from 1 to 1440');
  if (!['redis', 'postgres'].includes(o.backend)) throw new TypeError('--backend must be redis or postgres');
  if (!['drover', 'stand-in'].includes(o.api)) throw new TypeError('--api must be drover or stand-in');
  if (!(o.workers >= 1 && o.workers <= 16) || !(o.concurrency >= 1 && o.concurrency <= 200)) throw new TypeError('--workers 1..16, --concurrency 1..200');
  return o;
}

/** One scenario (or the soak): its own database, namespace, API server and workers. */
async function runScenario(services: Services, scenario: Scenario | undefined, o: ChaosOptions, size: Size, logDir: string,
  onSample?: (t: number, fleet: Fleet, pool: Pool) => Promise<void>): Promise<ScenarioRow> {
  const name = scenario?.name ?? 'soak';
  const tag = randomBytes(3).toString('hex');
  const databaseUrl = await services.createDatabase(`chaos_${name.replace(/-/g, '_')}_${tag}`);
  const namespace = `c${tag}`;
  const dir = path.join(logDir, name);
  fs.mkdirSync(dir, { recursive: true });
  const cluster = scenario?.redis === 'cluster' ? await services.startCluster() : undefined;
  const redisUrl = o.backend === 'redis' ? cluster?.url ?? services.redis.url : undefined;
  // Workers on hosts of their own reach Redis and Postgres at the bridge's address.
  const network = scenario?.hosts ? HostNetwork.create(o.workers) : undefined;
  if (network) {
    if (!cluster) await network.relay(services.redis.port);
    await network.relay(services.postgres.port);
    log(`${name}: workers on hosts ${network.hosts.map((h) => `${h.ns} (${h.address})`).join(', ')}; services at ${network.gateway}`);
  }
  const fleet = new Fleet({ databaseUrl, redisUrl, namespace, concurrency: o.concurrency, gracePeriodMs: 2000, logDir: dir, api: o.api, network });
  const pool = new Pool({ connectionString: databaseUrl, max: 4 });
  pool.on('error', () => undefined);
  const backend = new QueueBackend({ databaseUrl, redisUrl, namespace });
  const logFrom = services.postgresLogSize();
  try {
    await fleet.startApi();
    await Promise.all(Array.from({ length: o.workers }, () => fleet.startWorker()));
    const producer = new Producer(fleet.apiUrl, `${name}-${tag}`, pool);
    await scenario?.prepare?.(producer);
    const probes: Promise<number>[] = [];
    let faults = 0;
    const seen: string[] = [];
    const started = Date.now();
    const endsAt = started + size.loadMs;
    log(`${name}: load ${size.rate} runs/s for ${size.loadMs / 1000} s on ${o.workers} workers (${o.api} API)${scenario ? `; fault: ${scenario.fault}` : ''}`);
    let sampling = true;
    const sampler = (async () => {
      for (let t = 0; sampling; t++) {
        fleet.sampleRss();
        if (onSample && t > 0 && t % 10 === 0) await onSample((Date.now() - started) / 1000, fleet, pool).catch(() => undefined);
        await sleep(1000);
      }
    })();
    await Promise.all([
      producer.load(size.rate, size.loadMs),
      scenario?.inject({
        services, fleet, producer, queues: backend, pool, namespace, network, violation: (what) => seen.push(what), loadMs: size.loadMs, endsAt, quick: o.quick,
        faultDone: (what) => {
          faults++;
          log(`${name}: fault ${faults}: ${what}`);
          probes.push(producer.probe());
        },
      }),
    ]);
    log(`${name}: load over (${producer.records.size} runs asked, ${producer.retries} producer retries); settling`);
    const loadEnded = Date.now();
    await producer.drain();
    const recoveries = await Promise.all(probes);
    const settled = await waitForSettle(pool, size.settleMs);
    const settleMs = Number.isFinite(settled) ? Date.now() - loadEnded : Number.NaN;
    await sleep(3000); // a few reconciler passes: jobs of terminal steps are cleaned up
    sampling = false;
    await sampler;
    const result = await checkInvariants(pool, backend, producer.records.values(), { attemptsMayBeLost: scenario?.losesAttempts ?? false });
    const pgLog = checkPostgresLog(services.postgresLog, logFrom);
    const violations = [...seen, ...result.violations, ...pgLog.violations];
    if (recoveries.some((ms) => !Number.isFinite(ms))) violations.push('a recovery probe run did not succeed');
    if (!Number.isFinite(settleMs)) violations.push(`runs still open ${size.settleMs / 1000} s after the load`);
    const row: ScenarioRow = {
      scenario: name, fault: scenario?.fault ?? 'none (soak)', runsAccepted: result.runsAccepted, steps: result.steps, executions: result.executions,
      faults, runsLost: result.runsLost, doubleCompletions: result.doubleCompletions, deadlocks: pgLog.deadlocks, extraExecutions: result.extraExecutions,
      recoveryMs: recoveries.length ? Math.max(...recoveries) : Number.NaN, settleMs,
      peakWorkerRssMb: fleet.rssPeakMb.workers, peakApiRssMb: fleet.rssPeakMb.api, violations, passed: violations.length === 0,
    };
    log(`${name}: ${row.passed ? 'PASS' : 'FAIL'}: ${row.runsAccepted} runs, ${row.steps} steps, ${row.faults} faults, lost ${row.runsLost}, doubled ${row.doubleCompletions}, deadlocks ${row.deadlocks}, extra executions ${row.extraExecutions}`);
    for (const v of violations.slice(0, 20)) log(`  ${v}`);
    return row;
  } finally {
    await fleet.stop();
    await backend.close();
    await pool.end().catch(() => undefined);
    network?.destroy();
    if (cluster) await services.stopCluster();
  }
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  const command = `npm run chaos${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-chaos-logs-'));
  const t0 = Date.now();
  log(`logs in ${logDir}`);
  const services = await Services.start(logDir);
  log(`Redis ${services.redis.url}, Postgres port ${services.postgres.port}`);
  const reportFile = path.join(ROOT, 'RELIABILITY.md');
  const header = (mode: string) => `Command: \`${command}\` (${mode}; ${o.workers} workers × concurrency ${o.concurrency}, ${o.api === 'drover' ? '`drover server`' : 'the stand-in API server chaos/api-server.ts'}, ${o.backend === 'redis' ? 'Redis queues' : 'queues on BullMQ\'s PostgreSQL backend'})\n\nMachine: ${machine()}\n\nDate: ${new Date().toISOString()}`;

  if (o.soakMinutes) {
    const samples: string[] = [];
    let lastSucceeded = 0;
    let lastT = 0;
    const row = await runScenario(services, undefined, o, { loadMs: o.soakMinutes * 60_000, rate: 8, settleMs: 120_000 }, logDir, async (t, fleet, pool) => {
      const { workersMb, apiMb } = fleet.sampleRss();
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE type = 'step.succeeded'`);
      const rate = (rows[0].n - lastSucceeded) / (t - lastT);
      lastSucceeded = rows[0].n;
      lastT = t;
      const line = `| ${Math.round(t)} | ${workersMb.join(', ')} | ${apiMb} | ${rate.toFixed(1)} |`;
      samples.push(line);
      log(`soak t=${Math.round(t)}s workers RSS ${workersMb.join('/')} MB, API ${apiMb} MB, ${rate.toFixed(1)} steps/s`);
    });
    const body = `## Soak (${o.soakMinutes} min, steady load, no faults)\n\n${header(`soak ${o.soakMinutes} min`)}\n\n| t (s) | RSS per worker (MB) | RSS API (MB) | steps succeeded/s |\n|---:|---|---:|---:|\n${samples.join('\n')}\n\n${table([row])}`;
    console.log(`\n${body}`);
    if (o.write) writeSection(reportFile, 'soak', body);
    return row.passed ? 0 : 1;
  }

  const size: Size = o.quick ? { loadMs: 18_000, rate: 6, settleMs: 60_000 } : { loadMs: 60_000, rate: 8, settleMs: 120_000 };
  const all = o.quick ? SCENARIOS : [...SCENARIOS, MIXED_SCENARIO, ...NETWORK_SCENARIOS];
  const chosen = all.filter((s) => (!o.only || o.only.includes(s.name)) && !(s.redisOnly && o.backend === 'postgres'));
  if (chosen.length === 0) throw new TypeError(`--only matched no scenario (scenarios: ${all.map((s) => s.name).join(', ')})`);
  const rows: ScenarioRow[] = [];
  for (const scenario of chosen) rows.push(await runScenario(services, scenario, o, size, logDir));
  const mode = `${o.quick ? 'quick' : 'full'}${o.backend === 'postgres' ? '-pg' : ''}`;
  const faults = chosen.map((s) => `- **${s.name}**: ${s.fault}`).join('\n');
  const body = `## ${o.quick ? 'Quick run (CI size)' : 'Full run'}${o.backend === 'postgres' ? ' on the PostgreSQL queue backend' : ''}: ${size.loadMs / 1000} s of load at ${size.rate} runs/s per scenario\n\n${header(mode)}, total ${((Date.now() - t0) / 1000).toFixed(0)} s\n\n${table(rows)}\n\n${faults}`;
  console.log(`\n${body}`);
  for (const r of rows.filter((x) => !x.passed)) console.log(`\n${r.scenario} violations:\n${r.violations.map((v) => `  - ${v}`).join('\n')}`);
  if (o.write && !o.only) writeSection(reportFile, mode, body);
  return rows.every((r) => r.passed) ? 0 : 1;
}

let finishing = false;
async function finish(code: number): Promise<never> {
  if (!finishing) {
    finishing = true;
    await stopEverything();
  }
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => { log(`${signal}: stopping everything`); void finish(130); });
process.on('uncaughtException', (error) => { console.error(error); void finish(1); });
main().then((code) => finish(code), (error) => { console.error(`chaos: ${error?.stack ?? error}`); void finish(1); });
