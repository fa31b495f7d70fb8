import { Client } from 'pg';

/** Creates the monthly audit partitions back to `daysBack` days ago (seeded history is backdated). */
export async function ensureAuditMonths(client: Client, daysBack: number): Promise<void> {
  await client.query(`SELECT drover.ensure_audit_partition((now() - make_interval(days => d))::date) FROM generate_series(0, $1::int) d`, [daysBack]);
}

/**
 * Fills a migrated database with finished history: `runs` succeeded runs of
 * `stepsPerRun` succeeded steps each, with their audit trail (created, queued,
 * started, succeeded), in a few set-based statements, then VACUUM ANALYZE so
 * the planner sees the table as a long-lived installation would.
 */
export async function seedHistory(url: string, runs: number, stepsPerRun: number): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`SET synchronous_commit = off`);
    await ensureAuditMonths(client, 62);
    await client.query(`
      INSERT INTO drover.runs (id, workflow, workflow_version, definition, status, input, output, workspace, open_steps,
                               created_at, started_at, finished_at)
      SELECT gen_random_uuid(), 'history', 'v1', '{"name":"history","steps":[]}'::jsonb, 'succeeded', '{}'::jsonb, '{}'::jsonb,
             'default', 0, t, t, t + interval '50 ms'
        FROM generate_series(1, $1::int) g, LATERAL (SELECT now() - interval '30 days' + g * interval '1 second') AS x(t)`, [runs]);
    await client.query(`
      INSERT INTO drover.steps (id, run_id, name, processor, queue, status, depends_on, deps_remaining, attempt, max_attempts,
                                options, output, lease, worker_id, created_at, queued_at, started_at, finished_at)
      SELECT gen_random_uuid(), r.id, 's' || k, 'noop', 'default', 'succeeded',
             CASE WHEN k = 0 THEN '{}'::text[] ELSE ARRAY['s' || (k - 1)] END, 0, 1, 3,
             '{"backoff":{"type":"exponential","delayMs":1000},"delayMs":0,"timeoutMs":null,"priority":0}'::jsonb,
             '{"ok":true}'::jsonb, gen_random_uuid(), 'history-worker', r.created_at, r.created_at, r.created_at, r.finished_at
        FROM drover.runs r CROSS JOIN generate_series(0, $1::int - 1) k
       WHERE r.workflow = 'history'`, [stepsPerRun]);
    await client.query(`
      INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
      SELECT r.created_at, e, r.id, NULL, 'client', NULL
        FROM drover.runs r CROSS JOIN unnest(ARRAY['run.created', 'run.started', 'run.succeeded']) e
       WHERE r.workflow = 'history'`);
    await client.query(`
      INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
      SELECT s.created_at, e, s.run_id, s.id, 'worker:history-worker', NULL
        FROM drover.steps s CROSS JOIN unnest(ARRAY['step.queued', 'step.started', 'step.succeeded']) e
       WHERE s.worker_id = 'history-worker'`);
    await client.query(`VACUUM ANALYZE drover.runs`);
    await client.query(`VACUUM ANALYZE drover.steps`);
    await client.query(`VACUUM ANALYZE drover.audit_events`);
  } finally {
    await client.end();
  }
}
