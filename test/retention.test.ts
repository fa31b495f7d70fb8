import { Client } from 'pg';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend, redisUrlFor } from './helpers/env';
import { fatal, sleep } from './helpers/fixtures';
import { cliEnv, runCli } from './helpers/server-process';

const DAY = 86_400_000;

describeEachBackend('retention', (backend) => {
  let engine: EngineHarness;

  beforeEach(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({
      workflows: [
        { name: 'quick', steps: [{ name: 'a', processor: 'chatty' }, { name: 'b', processor: 'chatty', dependsOn: ['a'] }] },
        { name: 'broken', steps: [{ name: 'x', processor: 'fatal' }] },
        { name: 'hold', steps: [{ name: 'h', processor: 'hold' }] },
      ],
      processors: {
        chatty: async (ctx) => { ctx.log(`hi from ${ctx.step.name}`); return { ok: true }; },
        fatal,
        hold: async (ctx) => { await sleep(60_000, ctx.signal); return {}; },
      },
    });
  });
  afterEach(async () => { await engine.close(); });

  async function finishedRun(workflow: string): Promise<string> {
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow })).id);
    return run.id;
  }

  /** Moves a run's times back by `days` (as if it had happened then). */
  async function backdate(id: string, days: number): Promise<void> {
    await engine.sql.query(`
      UPDATE drover.runs SET created_at = created_at - make_interval(days => $2), started_at = started_at - make_interval(days => $2),
             finished_at = finished_at - make_interval(days => $2) WHERE id = $1`, [id, days]);
  }

  const count = async (table: string, runIds: string[]) => (await engine.sql.query(`SELECT count(*)::int AS n FROM drover.${table} WHERE run_id = ANY ($1::uuid[])`, [runIds]))[0].n;
  const partitions = async () => (await engine.sql.query(`
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'drover.audit_events'::regclass ORDER BY 1`)).map((r) => r.relname as string);
  const monthPartition = (monthsAgo: number) => {
    const d = new Date();
    const m = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - monthsAgo, 1));
    return `audit_events_p${m.getUTCFullYear()}_${String(m.getUTCMonth() + 1).padStart(2, '0')}`;
  };

  it('deletes exactly the finished runs past the horizon with their steps and logs, never an open one, and drops old audit partitions', async () => {
    const old = [await finishedRun('quick'), await finishedRun('quick'), await finishedRun('broken')];
    const cancelled = (await engine.drover.createRun({ workflow: 'hold' })).id;
    await engine.drover.cancelRun(cancelled);
    old.push(cancelled);
    const recent = await finishedRun('quick');
    const running = (await engine.drover.createRun({ workflow: 'hold' })).id;
    await engine.drover.waitForRun(running, { timeoutMs: 200 }).catch(() => undefined);
    for (const id of old) await backdate(id, 40);
    await backdate(recent, 20);
    await backdate(running, 90); // created long ago, still open
    expect(await count('step_logs', old)).toBe(4);

    // Old history: one month whose runs are all gone, one month holding an event of a run still kept.
    await engine.sql.query(`SELECT drover.ensure_audit_partition((now() - interval '3 months')::date), drover.ensure_audit_partition((now() - interval '4 months')::date)`);
    await engine.sql.query(`
      INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
      SELECT date_trunc('month', now() - interval '3 months') + interval '1 day', 'run.created', $1, NULL, 'test', NULL FROM generate_series(1, 5)`, [old[0]]);
    await engine.sql.query(`
      INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
      VALUES (date_trunc('month', now() - interval '4 months') + interval '1 day', 'run.created', $1, NULL, 'test', NULL)`, [recent]);
    // Workers: one stopped two days ago (pruned), one an hour ago, one active.
    await engine.sql.query(`
      INSERT INTO drover.workers (id, hostname, pid, queues, concurrency, version, status, stopped_at) VALUES
        ('old-gone', 'h', 1, '{default}', 1, 'v', 'gone', now() - interval '2 days'),
        ('new-stopped', 'h', 2, '{default}', 1, 'v', 'stopped', now() - interval '1 hour')`);

    const report = await engine.drover.prune({ retentionDays: 30, batchSize: 2 });
    expect(report).toMatchObject({ ran: true, runs: 4, steps: 6, stepLogs: 4, workers: 1, auditEvents: 5, partitionsDropped: [monthPartition(3)] });
    const left = (await engine.sql.query(`SELECT id FROM drover.runs`)).map((r) => r.id).sort();
    expect(left).toEqual([recent, running].sort());
    expect(await count('steps', old)).toBe(0);
    expect(await count('step_logs', old)).toBe(0);
    expect(await count('step_logs', [recent])).toBe(2);
    const parts = await partitions();
    expect(parts).not.toContain(monthPartition(3));
    expect(parts).toContain(monthPartition(4)); // holds an event of a kept run
    expect(parts).toEqual(expect.arrayContaining([monthPartition(0), monthPartition(-1), monthPartition(-2)])); // made ahead
    expect((await engine.sql.query(`SELECT id FROM drover.workers ORDER BY id`)).map((r) => r.id)).not.toContain('old-gone');
    expect((await engine.sql.query(`SELECT id FROM drover.workers WHERE id = 'new-stopped'`))).toHaveLength(1);
    expect((await engine.drover.getRun(running)).status).not.toMatch(/succeeded|failed|cancelled/);
    // Rows are still append-only; the counter says what went.
    await expect(engine.sql.query(`DELETE FROM drover.audit_events WHERE run_id = $1`, [recent])).rejects.toThrow(/append-only/);
    const metrics = await engine.drover.metrics.registry.getSingleMetricAsString('drover_retention_deleted_total');
    expect(metrics).toContain('drover_retention_deleted_total{kind="runs"} 4');
    expect(metrics).toContain('drover_retention_deleted_total{kind="audit_events"} 5');

    // A second pass finds nothing; 0 days keeps everything.
    expect(await engine.drover.prune({ retentionDays: 30 })).toMatchObject({ runs: 0, auditEvents: 0 });
    await backdate(recent, 100);
    expect(await engine.drover.prune({ retentionDays: 0 })).toMatchObject({ ran: true, runs: 0 });
    expect(await engine.sql.query(`SELECT 1 FROM drover.runs WHERE id = $1`, [recent])).toHaveLength(1);
    await engine.drover.cancelRun(running);
  });

  it('skips a run a transition holds locked (never waits on it) and deletes it on the next pass', async () => {
    const id = await finishedRun('quick');
    await backdate(id, 40);
    const holder = new Client({ connectionString: engine.databaseUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM drover.runs WHERE id = $1 FOR UPDATE', [id]);
      const report = await engine.drover.prune({ retentionDays: 30 });
      expect(report.runs).toBe(0);
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    expect((await engine.drover.prune({ retentionDays: 30 })).runs).toBe(1);
  });

  it('drover prune runs it now and prints what it deleted', async () => {
    const id = await finishedRun('quick');
    await backdate(id, 10);
    const env = cliEnv({ DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(backend), DROVER_NAMESPACE: engine.namespace, DROVER_RETENTION_DAYS: '7' });
    const text = await runCli(['prune'], env);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^deleted finished history older than 7 day\(s\): 1 run\(s\), 2 step\(s\), 2 step log line\(s\), 0 audit event\(s\) in 0 monthly partition\(s\), 0 stopped worker\(s\)\n$/);
    const json = await runCli(['prune', '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ retentionDays: 7, ran: true, runs: 0, steps: 0 });
    const bad = await runCli(['prune'], { ...env, DROVER_RETENTION_DAYS: 'forever' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('drover: DROVER_RETENTION_DAYS must be a whole number from 0 to 36500 (got "forever")\n');
    expect(await engine.sql.query(`SELECT 1 FROM drover.runs WHERE id = $1`, [id])).toHaveLength(0);
  });
});
