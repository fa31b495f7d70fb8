import type { Client } from 'pg';
import { ensureAuditMonths } from './growth';

/** What `seedReadPath` puts in the database. */
export interface ReadSeed {
  runs: number;
  steps: number;
  /** The id of the one big run (its page is measured). */
  bigRunId: string;
  /** A run id and an idempotency key that exist (searches are measured with them). */
  someRunId: string;
  someIdempotencyKey: string;
}

export const SEED_WORKFLOWS = ['ingest', 'report', 'crawl', 'billing', 'notify'];
export const SEED_WORKSPACES = 10;

/** A chain of `n` steps as the definition snapshot a run keeps. */
function chainDefinition(name: string, n: number): unknown {
  return {
    name, failFast: false,
    steps: Array.from({ length: n }, (_, k) => ({
      name: `s${k}`, processor: 'noop', dependsOn: k ? [`s${k - 1}`] : [], attempts: 3,
      backoff: { type: 'exponential', delayMs: 1000 }, delayMs: 0, timeoutMs: null, queue: 'default', priority: 0,
    })),
  };
}

/**
 * Fills a migrated database the way a long-lived installation looks to the
 * console: `runs` runs over the last 30 days across five workflows and ten
 * workspaces (90% succeeded, 5% failed, 3% cancelled, 1% running, 1% pending;
 * every other run with an idempotency key), each with `stepsPerRun` chained
 * steps whose states follow the run's, plus one run of 1 → `bigRunSteps` − 2 → 1
 * steps with its whole audit trail. Bulk runs get no audit rows (the list and
 * the filters never read them; the run page of the big run does). Set-based
 * statements, then VACUUM ANALYZE.
 */
export async function seedReadPath(client: Client, runs: number, stepsPerRun: number, bigRunSteps: number): Promise<ReadSeed> {
  await client.query(`SET synchronous_commit = off`);
  await client.query(`SET maintenance_work_mem = '512MB'`);
  const definitions = SEED_WORKFLOWS.map((w) => chainDefinition(w, stepsPerRun));
  await client.query(`
    INSERT INTO drover.runs (id, workflow, workflow_version, definition, status, input, output, error, workspace,
                             idempotency_key, open_steps, failed_steps, created_at, started_at, finished_at)
    SELECT gen_random_uuid(), w, 'v1', ($2::jsonb[])[1 + g % 5], st,
           jsonb_build_object('n', g, 'tenant', 'ws' || (g % ${SEED_WORKSPACES})),
           CASE WHEN st = 'succeeded' THEN '{"ok":true}'::jsonb END,
           CASE WHEN st = 'failed' THEN '{"message":"s3 failed for good"}'::jsonb END,
           'ws' || (g % ${SEED_WORKSPACES}),
           CASE WHEN g % 2 = 0 THEN 'key-' || g END,
           CASE WHEN st IN ('pending', 'running') THEN $3::int ELSE 0 END,
           CASE WHEN st = 'failed' THEN 1 ELSE 0 END,
           t, CASE WHEN st <> 'pending' THEN t END, CASE WHEN st NOT IN ('pending', 'running') THEN t + interval '2 s' END
      FROM generate_series(1, $1::int) g,
           LATERAL (SELECT (ARRAY['ingest','report','crawl','billing','notify'])[1 + g % 5] AS w,
                           now() - interval '30 days' * (1 - g::float8 / $1::int) AS t,
                           CASE WHEN g % 100 < 90 THEN 'succeeded' WHEN g % 100 < 95 THEN 'failed'
                                WHEN g % 100 < 98 THEN 'cancelled' WHEN g % 100 < 99 THEN 'running' ELSE 'pending' END AS st) x`,
  [runs, definitions.map((d) => JSON.stringify(d)), stepsPerRun]);
  await client.query(`
    INSERT INTO drover.steps (id, run_id, name, processor, queue, status, depends_on, deps_remaining, attempt, max_attempts,
                              options, output, error, lease, worker_id, sink, created_at, queued_at, started_at, finished_at)
    SELECT gen_random_uuid(), r.id, 's' || k, 'noop', 'default', ss,
           CASE WHEN k = 0 THEN '{}'::text[] ELSE ARRAY['s' || (k - 1)] END,
           CASE WHEN ss = 'pending' AND k > 0 THEN 1 ELSE 0 END,
           CASE WHEN ss IN ('pending', 'queued', 'skipped', 'cancelled') THEN 0 ELSE 1 END, 3,
           '{"backoff":{"type":"exponential","delayMs":1000},"delayMs":0,"timeoutMs":null,"priority":0}'::jsonb,
           CASE WHEN ss = 'succeeded' THEN '{"ok":true}'::jsonb END,
           CASE WHEN ss = 'failed' THEN '{"message":"failed for good"}'::jsonb END,
           CASE WHEN ss = 'running' THEN gen_random_uuid() END,
           CASE WHEN ss NOT IN ('pending', 'queued', 'skipped', 'cancelled') THEN 'seed-worker' END,
           k = $1::int - 1, r.created_at,
           CASE WHEN ss NOT IN ('pending', 'skipped') THEN r.created_at END,
           CASE WHEN ss IN ('running', 'succeeded', 'failed') THEN r.created_at END,
           CASE WHEN ss IN ('succeeded', 'failed', 'cancelled', 'skipped') THEN r.created_at + interval '2 s' END
      FROM drover.runs r CROSS JOIN generate_series(0, $1::int - 1) k,
           LATERAL (SELECT CASE r.status
             WHEN 'succeeded' THEN 'succeeded'
             WHEN 'failed' THEN CASE WHEN k < 3 THEN 'succeeded' WHEN k = 3 THEN 'failed' ELSE 'skipped' END
             WHEN 'cancelled' THEN CASE WHEN k < 2 THEN 'succeeded' ELSE 'cancelled' END
             WHEN 'running' THEN CASE WHEN k < 4 THEN 'succeeded' WHEN k = 4 THEN 'running' ELSE 'pending' END
             ELSE CASE WHEN k = 0 THEN 'queued' ELSE 'pending' END END AS ss) x`, [stepsPerRun]);

  // The big run: a fan-out and fan-in that succeeded, with every event of its trail.
  const width = bigRunSteps - 2;
  const names = ['start', ...Array.from({ length: width }, (_, i) => `work-${i}`), 'finish'];
  const big = {
    name: 'bigfan', failFast: false,
    steps: names.map((name, i) => ({
      name, processor: 'noop', dependsOn: i === 0 ? [] : i === names.length - 1 ? names.slice(1, -1) : ['start'], attempts: 3,
      backoff: { type: 'exponential', delayMs: 1000 }, delayMs: 0, timeoutMs: null, queue: 'default', priority: 0,
    })),
  };
  const [{ id: bigRunId }] = (await client.query(`
    INSERT INTO drover.runs (id, workflow, workflow_version, definition, status, input, output, workspace, open_steps,
                             created_at, started_at, finished_at)
    VALUES (gen_random_uuid(), 'bigfan', 'v1', $1::jsonb, 'succeeded', '{}'::jsonb, '{"finish":{"ok":true}}'::jsonb, 'ws0', 0,
            now() - interval '1 hour', now() - interval '1 hour', now() - interval '59 minutes')
    RETURNING id`, [JSON.stringify(big)])).rows;
  await client.query(`
    INSERT INTO drover.steps (id, run_id, name, processor, queue, status, depends_on, deps_remaining, attempt, max_attempts,
                              options, output, lease, worker_id, sink, created_at, queued_at, started_at, finished_at)
    SELECT gen_random_uuid(), $1, n, 'noop', 'default', 'succeeded',
           CASE WHEN i = 1 THEN '{}'::text[] WHEN i = $3::int THEN $2::text[] ELSE ARRAY['start'] END, 0, 1, 3,
           '{"backoff":{"type":"exponential","delayMs":1000},"delayMs":0,"timeoutMs":null,"priority":0}'::jsonb,
           jsonb_build_object('ok', true, 'i', i), gen_random_uuid(), 'seed-worker', i = $3::int,
           now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour', now() - interval '59 minutes'
      FROM unnest($4::text[]) WITH ORDINALITY AS u(n, i)`,
  [bigRunId, names.slice(1, -1), names.length, names]);
  await ensureAuditMonths(client, 1);
  await client.query(`
    INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
    SELECT now() - interval '1 hour', e, $1, NULL, 'client', NULL FROM unnest(ARRAY['run.created', 'run.started']) e`, [bigRunId]);
  await client.query(`
    INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
    SELECT s.started_at, e, s.run_id, s.id, 'worker:seed-worker', CASE WHEN e = 'step.started' THEN '{"attempt":1}'::jsonb END
      FROM drover.steps s CROSS JOIN unnest(ARRAY['step.queued', 'step.started', 'step.succeeded']) e
     WHERE s.run_id = $1 ORDER BY s.name, e`, [bigRunId]);
  await client.query(`
    INSERT INTO drover.audit_events (at, type, run_id, step_id, actor, data)
    VALUES (now() - interval '59 minutes', 'run.succeeded', $1, NULL, 'worker:seed-worker', NULL)`, [bigRunId]);

  for (const table of ['runs', 'steps', 'audit_events']) await client.query(`VACUUM ANALYZE drover.${table}`);
  const [some] = (await client.query(`
    SELECT id, idempotency_key FROM drover.runs WHERE idempotency_key = 'key-' || ($1::int / 2 * 2)`, [runs])).rows;
  return { runs: runs + 1, steps: runs * stepsPerRun + bigRunSteps, bigRunId, someRunId: some.id, someIdempotencyKey: some.idempotency_key };
}
