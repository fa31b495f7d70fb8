/**
 * `npm run bench:retention`: the hot path's throughput (single-step runs,
 * created and finished end to end by one in-process worker of concurrency 50,
 * Redis queues) with retention deleting old history at the same time versus
 * without, in the same run on the same database: phases alternate
 * (without, with, without, with, …) and the medians are compared.
 * `--history N` finished runs (2 steps, 4 log lines and 9 audit events each)
 * are seeded past the horizon first; `--runs N` runs per phase; `--rounds N`.
 */
import { Drover } from '../src/drover';
import { databaseUrl, startServices, TEMPLATE_DB } from '../test/harness/services';
import { seedHistory } from './growth';
import { median, now } from './stats';
import { withClient } from './workloads';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
};

async function main(): Promise<void> {
  const history = arg('history', 200_000);
  const runsPerPhase = arg('runs', 10_000);
  const rounds = arg('rounds', 3);
  const services = await startServices({ fsync: false });
  try {
    await withClient(services.adminUrl, (c) => c.query(`CREATE DATABASE bench_retention TEMPLATE ${TEMPLATE_DB}`));
    const url = databaseUrl(services.adminUrl, 'bench_retention');
    const t0 = now();
    await seedHistory(url, history, 2);
    await withClient(url, async (c) => {
      // Past a 30-day horizon, with two log lines per step.
      await c.query(`UPDATE drover.runs SET finished_at = finished_at - interval '40 days' WHERE workflow = 'history'`);
      await c.query(`INSERT INTO drover.step_logs (run_id, step_id, attempt, message) SELECT s.run_id, s.id, 1, 'seeded line ' || k FROM drover.steps s, generate_series(1, 2) k`);
      await c.query(`VACUUM ANALYZE drover.runs`);
      await c.query(`VACUUM ANALYZE drover.step_logs`);
    });
    process.stderr.write(`seeded ${history} finished runs past the horizon in ${((now() - t0) / 1000).toFixed(1)} s\n`);

    const redisUrl = services.redis.url;
    const drover = await Drover.connect({ databaseUrl: url, redisUrl, namespace: 'benchret', poolSize: 20 });
    const worker = drover.createWorker({
      workflows: [{ name: 'hot', steps: [{ name: 'only', processor: 'noop' }] }], processors: { noop: async () => ({ ok: true }) },
      concurrency: 50, reconciler: false, maintenance: false,
    });
    await worker.run();

    /** Creates `n` runs in batches of 500 and waits for all to succeed; runs per second, end to end. */
    const phase = async (n: number): Promise<number> => {
      const start = now();
      const ids: string[] = [];
      for (let i = 0; i < n; i += 500) {
        const res = await drover.createRuns(Array.from({ length: Math.min(500, n - i) }, () => ({ workflow: 'hot' })));
        ids.push(...res.items.map((it) => it.id!));
      }
      await withClient(url, async (c) => {
        for (;;) {
          const { rows } = await c.query(`SELECT count(*)::int AS n FROM drover.runs WHERE id = ANY ($1::uuid[]) AND status = 'succeeded'`, [ids]);
          if (rows[0].n === n) return;
          if (now() - start > 300_000) throw new Error('phase timed out');
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      return n / ((now() - start) / 1000);
    };

    await phase(2000); // warm-up
    const without: number[] = [];
    const withRetention: number[] = [];
    let deletedRuns = 0;
    let deletingMs = 0;
    for (let round = 0; round < rounds; round++) {
      without.push(await phase(runsPerPhase));
      let stop = false;
      const started = now();
      const deleting = (async () => {
        while (!stop) {
          const report = await drover.prune({ retentionDays: 30 });
          deletedRuns += report.runs;
          if (report.runs === 0) break;
        }
      })();
      withRetention.push(await phase(runsPerPhase));
      stop = true;
      await deleting;
      deletingMs += now() - started;
      process.stderr.write(`round ${round + 1}: without ${without[round].toFixed(0)}/s, with retention ${withRetention[round].toFixed(0)}/s (deleted ${deletedRuns} runs so far)\n`);
    }
    const [left] = await withClient(url, async (c) => (await c.query(`SELECT count(*)::int AS n FROM drover.runs WHERE workflow = 'history'`)).rows);
    await worker.close();
    await drover.close();
    const a = median(without);
    const b = median(withRetention);
    console.log(JSON.stringify({
      history, runsPerPhase, rounds, withoutPerSecond: Math.round(a), withRetentionPerSecond: Math.round(b),
      changePercent: Number((((b - a) / a) * 100).toFixed(1)), deletedRuns, historyLeft: left.n,
      deletedRunsPerSecond: Math.round(deletedRuns / (deletingMs / 1000)), without: without.map(Math.round), withRetention: withRetention.map(Math.round),
    }, null, 2));
  } finally {
    await services.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
