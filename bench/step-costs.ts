/**
 * `npm run bench:costs`: what one step costs each store, counted rather than
 * timed: Redis commands per step (`INFO commandstats`) and Postgres statements
 * per step (`pg_stat_statements`), with Redis's CPU (`INFO cpu`) and the
 * statements' execution time, for single-step runs and 4-step chains on one
 * worker process (concurrency 50, empty processor). docs/scaling.md turns these
 * into the steps per second one Redis shard and one Postgres primary carry.
 *
 * Options: --runs N (default 4000), --backend redis|postgres (default redis).
 */
import { Client } from 'pg';
import IORedis from 'ioredis';
import { migrate } from '../src/db/data-source';
import { Drover } from '../src/drover';
import { EmbeddedPostgres } from '../src/embedded/embedded-postgres';
import type { WorkflowDefinition } from '../src/types';
import { databaseUrl, startServices } from '../test/harness/services';

const WORKFLOWS: WorkflowDefinition[] = [
  { name: 'single', steps: [{ name: 'a', processor: 'noop' }] },
  { name: 'chain4', steps: ['a', 'b', 'c', 'd'].map((name, i, all) => ({ name, processor: 'noop', ...(i ? { dependsOn: [all[i - 1]] } : {}) })) },
];

interface Costs {
  workflow: string;
  steps: number;
  seconds: number;
  /** Every command Redis ran, those inside BullMQ's Lua scripts included (`INFO commandstats`). */
  redisCommandsPerStep: number;
  /** BullMQ's Lua script calls (`EVALSHA`/`EVAL`): each is one round trip that runs several commands. */
  redisScriptCallsPerStep: number;
  redisTop: string;
  redisCpuUsPerStep: number;
  /** Statements drover sent (top level). */
  pgStatementsPerStep: number;
  /** Statements run inside those (triggers, foreign key checks). */
  pgNestedPerStep: number;
  pgTransactionsPerStep: number;
  pgExecUsPerStep: number;
  /** WAL written per step (`pg_current_wal_lsn()` before and after), bytes. */
  walBytesPerStep: number;
  pgTop: string;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function redisStats(redis: IORedis): Promise<{ calls: Map<string, number>; cpuUs: number }> {
  const stats = await redis.info('commandstats');
  const calls = new Map<string, number>();
  for (const m of stats.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) calls.set(m[1], Number(m[2]));
  const cpu = await redis.info('cpu');
  const num = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  return { calls, cpuUs: (num('used_cpu_sys') + num('used_cpu_user')) * 1e6 };
}

async function main(): Promise<void> {
  const runs = Number(arg('runs', '4000'));
  const backend = arg('backend', 'redis');
  const services = await startServices();
  let postgres = services.postgres;
  try {
    // pg_stat_statements must be preloaded: set it, then start the server again on the same data and port.
    const admin = new Client({ connectionString: services.adminUrl });
    await admin.connect();
    await admin.query(`ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'`);
    await admin.query(`ALTER SYSTEM SET pg_stat_statements.track = 'all'`);
    await admin.query('CREATE DATABASE costs');
    await admin.end();
    const options = (postgres as unknown as { options: ConstructorParameters<typeof EmbeddedPostgres>[0] }).options;
    await postgres.stop();
    postgres = new EmbeddedPostgres({ ...options, port: services.postgres.port });
    await postgres.start();
    const url = databaseUrl(services.adminUrl, 'costs');
    await migrate(url, { queueBackend: 'postgres' });
    const sql = new Client({ connectionString: url });
    await sql.connect();
    await sql.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const redisUrl = backend === 'redis' ? services.redis.url : undefined;
    const redis = new IORedis(services.redis.url);
    const rows: Costs[] = [];
    for (const workflow of WORKFLOWS) {
      const drover = await Drover.connect({ databaseUrl: url, redisUrl, namespace: `costs-${workflow.name}` });
      const worker = drover.createWorker({ workflows: WORKFLOWS, processors: { noop: async () => ({}) }, concurrency: 50, reconciler: false });
      await worker.run();
      // Warm-up: connections, prepared statements, scripts loaded.
      for (const r of (await drover.createRuns(Array.from({ length: 200 }, () => ({ workflow: workflow.name })))).items) await drover.waitForRun(r.id!, { timeoutMs: 60_000 });
      await redis.config('RESETSTAT');
      await sql.query('SELECT pg_stat_statements_reset()');
      const [{ xact: xact0 }] = (await sql.query(`SELECT xact_commit + xact_rollback AS xact FROM pg_stat_database WHERE datname = 'costs'`)).rows;
      const redis0 = await redisStats(redis);
      const [{ lsn: lsn0 }] = (await sql.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows;
      const t0 = Date.now();
      const ids: string[] = [];
      for (let i = 0; i < runs; i += 1000) {
        const batch = await drover.createRuns(Array.from({ length: Math.min(1000, runs - i) }, () => ({ workflow: workflow.name })));
        ids.push(...batch.items.map((x) => x.id!));
      }
      for (;;) {
        const [{ open }] = (await sql.query(`SELECT count(*)::int AS open FROM drover.runs WHERE finished_at IS NULL`)).rows;
        if (open === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const seconds = (Date.now() - t0) / 1000;
      const redis1 = await redisStats(redis);
      const [{ bytes: walBytes }] = (await sql.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint AS bytes', [lsn0])).rows;
      const steps = runs * workflow.steps.length;
      const statements = (await sql.query(`
        SELECT s.calls::bigint AS calls, s.total_exec_time AS ms, s.toplevel, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 60) AS q
          FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = 'costs' AND s.query NOT ILIKE '%pg_stat_%' AND s.query NOT ILIKE '%AS open FROM drover.runs%' ORDER BY s.calls DESC`)).rows;
      const [{ xact: xact1 }] = (await sql.query(`SELECT xact_commit + xact_rollback AS xact FROM pg_stat_database WHERE datname = 'costs'`)).rows;
      const redisCalls = [...redis1.calls].map(([cmd, n]) => [cmd, n - (redis0.calls.get(cmd) ?? 0)] as const).filter(([cmd, n]) => n > 0 && cmd !== 'info' && cmd !== 'config');
      const redisTotal = redisCalls.reduce((a, [, n]) => a + n, 0);
      const top = statements.filter((r) => r.toplevel);
      const pgCalls = top.reduce((a, r) => a + Number(r.calls), 0);
      const nested = statements.filter((r) => !r.toplevel).reduce((a, r) => a + Number(r.calls), 0);
      rows.push({
        workflow: workflow.name, steps, seconds,
        redisCommandsPerStep: backend === 'redis' ? redisTotal / steps : 0,
        redisTop: redisCalls.sort((a, b) => b[1] - a[1]).slice(0, 6).map(([c, n]) => `${c} ${(n / steps).toFixed(2)}`).join(', '),
        redisScriptCallsPerStep: backend === 'redis' ? redisCalls.filter(([c]) => c === 'evalsha' || c === 'eval').reduce((a, [, n]) => a + n, 0) / steps : 0,
        redisCpuUsPerStep: backend === 'redis' ? (redis1.cpuUs - redis0.cpuUs) / steps : 0,
        pgStatementsPerStep: pgCalls / steps,
        pgNestedPerStep: nested / steps,
        pgTransactionsPerStep: (Number(xact1) - Number(xact0)) / steps,
        walBytesPerStep: Number(walBytes) / steps,
        pgExecUsPerStep: (top.reduce((a, r) => a + Number(r.ms), 0) * 1000) / steps,
        pgTop: top.slice(0, 8).map((r) => `${(Number(r.calls) / steps).toFixed(2)} × ${r.q}`).join('\n    '),
      });
      await worker.close();
      await drover.close();
    }
    redis.disconnect();
    await sql.end();
    console.log(`step costs, ${runs} runs per workflow, backend ${backend}, 1 worker process, concurrency 50, empty processor`);
    console.log('| workflow | steps | steps/s here | Redis script calls/step | Redis commands run/step (incl. in scripts) | Redis CPU µs/step | Postgres statements/step | nested (triggers, FK checks)/step | Postgres transactions/step | statement exec µs/step | WAL bytes/step |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      console.log(`| ${r.workflow} | ${r.steps} | ${Math.round(r.steps / r.seconds)} | ${r.redisScriptCallsPerStep.toFixed(2)} | ${r.redisCommandsPerStep.toFixed(2)} | ${r.redisCpuUsPerStep.toFixed(1)} | ${r.pgStatementsPerStep.toFixed(2)} | ${r.pgNestedPerStep.toFixed(2)} | ${r.pgTransactionsPerStep.toFixed(2)} | ${r.pgExecUsPerStep.toFixed(1)} | ${Math.round(r.walBytesPerStep)} |`);
    }
    for (const r of rows) console.log(`\n${r.workflow}: Redis commands per step: ${r.redisTop}\n  Postgres statements per step:\n    ${r.pgTop}`);
  } finally {
    await postgres.stop().catch(() => undefined);
    await services.stop();
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(`bench:costs: ${error?.stack ?? error}`);
  process.exit(1);
});
