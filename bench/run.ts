/**
 * `npm run bench`: drover against raw BullMQ (Redis and PostgreSQL backends),
 * pg-boss and graphile-worker on the same throwaway Redis and Postgres, with
 * the same concurrency and an empty processor. Prints one table of medians and
 * writes it, with the machine's description, into BENCHMARKS.md.
 */
import * as path from 'node:path';
import { databaseUrl, startServices, TEMPLATE_DB, type Services } from '../test/harness/services';
import { seedHistory } from './growth';
import { describeMachine, renderReport, writeBenchmarksFile, type Results } from './report';
import { fmt, now } from './stats';
import { isDrover, usesRedis, SYSTEMS, type SystemId, type Target } from './systems';
import { accountServerCpu, chainLatency, creation, fanRun, throughput, withClient } from './workloads';

export const WORKLOADS = ['throughput', 'dag', 'latency', 'creation', 'growth'] as const;
export type Workload = (typeof WORKLOADS)[number];

/** Command-line options. */
export interface BenchOptions {
  quick: boolean;
  systems: SystemId[];
  workloads: Workload[];
  /** Measured rounds after the warm-up. Default 2 (quick: 2). */
  rounds: number;
  /** Jobs / single-step runs of the throughput workload. Default 20 000 (quick: 4 000). */
  size: number;
  /** Worker concurrency of every system. Default 50. */
  concurrency: number;
  /** Finished step rows already in the database for the growth workload. Default 500 000 (quick: 100 000). */
  history: number;
  /** Write BENCHMARKS.md. Default: yes, except with --quick. */
  write: boolean;
  /** fsync on the Postgres server. Default off (see BENCHMARKS.md). */
  fsync: boolean;
}

export function parseArgs(argv: string[]): BenchOptions {
  const get = (name: string): string | undefined => {
    const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
    if (i < 0) return undefined;
    return argv[i].includes('=') ? argv[i].slice(argv[i].indexOf('=') + 1) : argv[i + 1];
  };
  const has = (name: string) => argv.includes(`--${name}`);
  const quick = has('quick');
  const list = <T extends string>(name: string, all: readonly T[]): T[] => {
    const raw = get(name);
    if (!raw) return [...all];
    const items = raw.split(',').map((s) => s.trim()).filter(Boolean) as T[];
    for (const item of items) if (!all.includes(item)) throw new TypeError(`--${name}: unknown "${item}" (choose from ${all.join(', ')})`);
    return items;
  };
  const int = (name: string, fallback: number): number => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new TypeError(`--${name} must be a positive whole number (got ${raw})`);
    return n;
  };
  return {
    quick,
    systems: list('systems', SYSTEMS),
    workloads: list('workloads', WORKLOADS),
    rounds: int('rounds', 2),
    size: int('size', quick ? 4000 : 20_000),
    concurrency: int('concurrency', 50),
    history: int('history', quick ? 100_000 : 500_000),
    write: has('write') || (!quick && !has('no-write')),
    fsync: has('fsync'),
  };
}

const TIMEOUT_MS = 300_000;
const log = (line: string) => process.stderr.write(`${line}\n`);

async function createDatabase(services: Services, name: string, template = TEMPLATE_DB): Promise<string> {
  await withClient(services.adminUrl, (admin) => admin.query(`CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`));
  return databaseUrl(services.adminUrl, name);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const started = now();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  log(`drover bench: ${options.systems.join(', ')} | ${options.workloads.join(', ')} | ${options.rounds} rounds | size ${options.size} | concurrency ${options.concurrency}`);
  const services = await startServices({ fsync: options.fsync, maxConnections: 600 });
  accountServerCpu(services.postgres.pid, services.redis.pid);
  const stopServices = () => services.stop().catch(() => undefined);
  process.once('SIGINT', () => { void stopServices().finally(() => process.exit(130)); });
  const results: Results = {};
  const figures: string[] = [];
  const record = (metric: string, system: SystemId, value: number) => {
    ((results[metric] ??= {})[system] ??= []).push(value);
    figures.push(`${metric} ${fmt(value)}`);
  };
  const loadBefore = (await import('node:os')).loadavg();
  try {
    const dbs = new Map<SystemId, string>();
    for (const system of options.systems) dbs.set(system, await createDatabase(services, `b_${system.replace(/-/g, '_')}`));
    const droverSystems = options.systems.filter(isDrover);
    const growthDbs = new Map<SystemId, string>();
    if (options.workloads.includes('growth') && droverSystems.length) {
      const t = now();
      const seedUrl = await createDatabase(services, 'growth_template');
      await seedHistory(seedUrl, Math.ceil(options.history / 5), 5);
      await withClient(seedUrl, (c) => c.query('CHECKPOINT')); // seedHistory vacuumed already
      log(`growth: seeded ${options.history} finished steps in ${((now() - t) / 1000).toFixed(1)} s`);
      for (const system of droverSystems) growthDbs.set(system, await createDatabase(services, `g_${system.replace(/-/g, '_')}`, 'growth_template'));
    }
    let seq = 0;
    const target = (system: SystemId, url = dbs.get(system)!): Target => ({
      system, databaseUrl: url, redisUrl: services.redis.url, queue: `b${++seq}${system.replace(/[^a-z]/g, '').slice(0, 6)}`,
    });
    const c = options.concurrency;

    // Warm-up: a small throughput round per system (JIT, connections, caches); not recorded.
    for (const system of options.systems) {
      await throughput(target(system), Math.min(2000, options.size), 1, c, TIMEOUT_MS);
    }

    for (let round = 1; round <= options.rounds; round++) {
      // Rotate the order so no system always runs first (or last) on a warming machine.
      const order = options.systems.map((_, i) => options.systems[(i + round - 1) % options.systems.length]);
      for (const system of order) {
        const t = now();
        if (options.workloads.includes('throughput')) {
          const one = await throughput(target(system), options.size, 1, c, TIMEOUT_MS);
          record('tp1', system, one.perSecond);
          record('rss', system, one.peakRssMb);
          record('cpuw', system, one.workerCpuUs);
          record('cpupg', system, one.postgresCpuUs);
          if (usesRedis(system)) record('cpuredis', system, one.redisCpuUs);
          record('tp2', system, (await throughput(target(system), options.size, 2, c, TIMEOUT_MS)).perSecond);
        }
        if (options.workloads.includes('growth') && isDrover(system)) {
          record('growth', system, (await throughput(target(system, growthDbs.get(system)), options.size, 1, c, TIMEOUT_MS)).perSecond);
        }
        if (options.workloads.includes('latency')) {
          const lat = await chainLatency(target(system), 200, c, TIMEOUT_MS);
          record('lat50', system, lat.p50);
          record('lat99', system, lat.p99);
        }
        if (options.workloads.includes('dag') && isDrover(system)) {
          record('dag', system, await fanRun(target(system), c, TIMEOUT_MS));
        }
        if (options.workloads.includes('creation')) {
          // What it creates is never consumed: a database of its own, or the leftovers would
          // slow a later round (graphile-worker's fetch skips 10,000 foreign jobs; a drover
          // worker's reconciler would enqueue leftover runs into its rounds).
          const url = await createDatabase(services, `c${round}_${system.replace(/-/g, '_')}`);
          if (isDrover(system)) {
            const made = await creation(target(system, url), 10_000);
            record('big', system, made.bigRunMs);
            record('create', system, made.runsPerSecond);
          } else {
            record('create', system, (await creationOfQueue(target(system, url))));
          }
        }
        // Each round's figures as they come, so a run cut short still tells something.
        log(`round ${round}: ${system} done in ${((now() - t) / 1000).toFixed(1)} s: ${figures.splice(0).join(', ')}`);
        // Vacuum what this system wrote now, so autovacuum does not run during the next system's turn.
        await settle([dbs.get(system)!, ...(growthDbs.has(system) ? [growthDbs.get(system)!] : [])]);
      }
    }
    const machine = await describeMachine(services);
    machine.loadBefore = loadBefore;
    machine.loadAfter = (await import('node:os')).loadavg();
    machine.elapsedS = (now() - started) / 1000;
    const report = renderReport(results, options, machine, command);
    process.stdout.write(`\n${report}\n`);
    if (options.write) {
      const file = path.join(__dirname, '..', '..', 'BENCHMARKS.md');
      writeBenchmarksFile(file, report);
      log(`wrote ${path.relative(process.cwd(), file) || file}`);
    }
  } finally {
    await stopServices();
  }
}

/** VACUUM (ANALYZE) the given databases and CHECKPOINT: a system's leftover maintenance stays in its own turn. */
async function settle(urls: string[]): Promise<void> {
  for (const url of urls) {
    await withClient(url, async (client) => {
      await client.query('VACUUM (ANALYZE)');
      await client.query('CHECKPOINT');
    });
  }
}

/** Queues' counterpart of the creation workload: 10,000 jobs enqueued in bulk, per second. */
async function creationOfQueue(target: Target): Promise<number> {
  const { openProducer } = await import('./producer');
  const producer = await openProducer(target);
  try {
    const t = now();
    await producer.populate(10_000);
    return 10_000 / ((now() - t) / 1000);
  } finally {
    await producer.close();
  }
}

if (require.main === module) {
  main().then(() => process.exit(0), (error) => {
    process.stderr.write(`bench failed: ${error?.stack ?? error}\n`);
    process.exit(1);
  });
}

