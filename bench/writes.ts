/**
 * `npm run bench:writes`: what Postgres does per drover step, from its own
 * statistics (figures a busy machine does not change): row updates of steps
 * and runs and audit rows per single-step run, statements per step, and the
 * execution time Postgres spent per step (pg_stat_statements), with every
 * start written on its own (`recordStartAfterMs` 0) and with the one-write path
 * (the default), on both queue backends. One worker process (this one),
 * concurrency 50, an empty processor, no reconciler.
 *
 * Options: --runs N (default 5000).
 */
import { Client } from 'pg';
import { Drover } from '../src/drover';
import { createWorker } from '../src/worker/worker';
import { databaseUrl, startServices, TEMPLATE_DB } from '../test/harness/services';
import { WORKFLOWS } from './systems';

interface Row { backend: string; threshold: number; stepsPerS: number; stepUpdates: number; runUpdates: number; auditRows: number; statements: number; execUs: number; top: string[] }

async function measure(adminUrl: string, redisUrl: string | undefined, threshold: number, runs: number, n: number): Promise<Row> {
  const db = `writes_${n}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${db} TEMPLATE ${TEMPLATE_DB}`);
  await admin.end();
  const url = databaseUrl(adminUrl, db);
  const namespace = `w${n}`;
  const producer = await Drover.connect({ databaseUrl: url, redisUrl, namespace });
  await producer.registerWorkflows(WORKFLOWS);
  for (let i = 0; i < runs; i += 1000) await producer.createRuns(Array.from({ length: Math.min(1000, runs - i) }, () => ({ workflow: 'single' })));
  await producer.close(); // its backends exit, so their table statistics are flushed before the first snapshot
  const stats = new Client({ connectionString: url });
  await stats.connect();
  await stats.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`);
  const tables = async () => Object.fromEntries((await stats.query(`
    SELECT relname, n_tup_upd::int AS upd, n_tup_ins::int AS ins FROM pg_stat_user_tables WHERE schemaname = 'drover'`)).rows.map((r) => [r.relname, r]));
  const before = await tables();
  await stats.query(`SELECT pg_stat_statements_reset()`);
  const t0 = Date.now();
  const worker = createWorker({
    databaseUrl: url, redisUrl, namespace, workflows: WORKFLOWS, concurrency: 50, reconciler: false, recordStartAfterMs: threshold,
    processors: { noop: async () => null, chain: async () => null },
  });
  await worker.run();
  for (;;) {
    const { rows: [r] } = await stats.query(`SELECT count(*)::int AS open FROM drover.runs WHERE finished_at IS NULL`);
    if (r.open === 0) break;
    if (Date.now() - t0 > 600_000) throw new Error('runs did not finish within 10 minutes');
    await new Promise((res) => setTimeout(res, 100));
  }
  const seconds = (Date.now() - t0) / 1000;
  await worker.close();
  await new Promise((res) => setTimeout(res, 1500));
  const after = await tables();
  const { rows: [audit] } = await stats.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE type NOT IN ('run.created', 'step.queued')`);
  const { rows: statements } = await stats.query(`
    SELECT calls::int, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS q FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time DESC`);
  await stats.end();
  const drop = new Client({ connectionString: adminUrl });
  await drop.connect();
  await drop.query(`DROP DATABASE ${db} WITH (FORCE)`);
  await drop.end();
  const execMs = statements.reduce((s, r) => s + Number(r.total_exec_time), 0);
  return {
    backend: redisUrl ? 'redis' : 'postgres', threshold, stepsPerS: Math.round(runs / seconds),
    stepUpdates: (after.steps.upd - before.steps.upd) / runs, runUpdates: (after.runs.upd - before.runs.upd) / runs,
    auditRows: audit.n / runs, statements: statements.reduce((s, r) => s + r.calls, 0) / runs, execUs: (execMs * 1000) / runs,
    top: statements.slice(0, 6).map((r) => `${(Number(r.total_exec_time) * 1000 / runs).toFixed(1)} µs/step, ${r.calls} calls: ${r.q}`),
  };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : 5000;
  const services = await startServices({ settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } });
  try {
    const rows: Row[] = [];
    let n = 0;
    for (const redisUrl of [services.redis.url, undefined]) {
      for (const threshold of [0, 1000]) rows.push(await measure(services.adminUrl, redisUrl, threshold, runs, n++));
    }
    console.log(`\n${runs} single-step runs per row; one worker process, concurrency 50, empty processor\n`);
    console.log('| backend | recordStartAfterMs | step row updates / step | run row updates / step | audit rows / step (beyond run.created, step.queued) | statements / step | Postgres execution time / step | steps/s (load-sensitive) |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.backend} | ${r.threshold} | ${r.stepUpdates.toFixed(2)} | ${r.runUpdates.toFixed(2)} | ${r.auditRows.toFixed(2)} | ${r.statements.toFixed(2)} | ${r.execUs.toFixed(0)} µs | ${r.stepsPerS} |`);
    }
    for (const r of rows) console.log(`\n${r.backend}, recordStartAfterMs ${r.threshold}, top statements:\n  ${r.top.join('\n  ')}`);
  } finally {
    await services.stop();
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error);
  process.exit(1);
});
