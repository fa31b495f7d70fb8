import type { Queryable } from '../db/sql';

/** What the alerting gauges report, read from Postgres at scrape time. */
export interface HealthReading {
  /** Per queue: seconds since its oldest queued step could have started (none ready: the queue is absent). */
  oldestQueuedStepAgeSeconds: Array<{ queue: string; seconds: number }>;
  /** Registered workers by liveness: `active` heartbeats in time, `stale` ones are registered active but silent. */
  workers: { active: number; stale: number };
  /** Open runs with no step queued or running (nothing can move them on), older than `STUCK_RUN_AFTER_MS`. */
  runsStuck: number;
}

/** A run is counted stuck once it is this old (a run between its creation and its first enqueue is not). */
export const STUCK_RUN_AFTER_MS = 60_000;
/** A worker whose heartbeat is older than this is `stale` (the reconciler marks it gone at 30 s by default). */
export const STALE_WORKER_AFTER_MS = 30_000;

/**
 * Reads the health gauges in one round trip of three indexed queries:
 * queued steps through `steps_unfinished_idx`, open runs through
 * `runs_unfinished_idx` (each checked against its steps by `steps_run_name_key`),
 * workers through `workers_status_heartbeat_idx`.
 */
export async function readHealth(sql: Queryable): Promise<HealthReading> {
  const [row] = await sql.query<{ ages: Array<{ queue: string; seconds: number }> | null; active: number; stale: number; stuck: number }>(`
    WITH ready AS (
      -- When each queued step could start: after its backoff (available_at), else after its delayMs.
      SELECT queue, COALESCE(available_at, queued_at + make_interval(secs => COALESCE((options->>'delayMs')::double precision, 0) / 1000)) AS ready_at
        FROM drover.steps
       WHERE finished_at IS NULL AND status = 'queued'
         -- Not the steps that wait by design: sleeps, signals, child runs (drover's own processors), or a concurrency key.
         AND processor NOT LIKE 'drover:%'
         AND NOT (options ? 'flow' AND EXISTS (SELECT 1 FROM drover.flow_entries f WHERE f.subject IN (steps.id, steps.run_id) AND f.state = 'waiting'))
    ), ages AS (
      SELECT queue, extract(epoch FROM now() - min(ready_at))::double precision AS seconds
        FROM ready WHERE ready_at <= now() GROUP BY queue
    )
    SELECT
      (SELECT json_agg(json_build_object('queue', queue, 'seconds', seconds) ORDER BY queue) FROM ages) AS ages,
      (SELECT count(*)::int FROM drover.workers WHERE status = 'active' AND last_heartbeat_at >= now() - make_interval(secs => $1::double precision / 1000)) AS active,
      (SELECT count(*)::int FROM drover.workers WHERE status = 'active' AND last_heartbeat_at < now() - make_interval(secs => $1::double precision / 1000)) AS stale,
      (SELECT count(*)::int FROM drover.runs r
        WHERE r.finished_at IS NULL AND r.created_at < now() - make_interval(secs => $2::double precision / 1000)
          AND NOT EXISTS (SELECT 1 FROM drover.steps s WHERE s.run_id = r.id AND s.status IN ('queued', 'running'))) AS stuck`,
  [STALE_WORKER_AFTER_MS, STUCK_RUN_AFTER_MS]);
  return {
    oldestQueuedStepAgeSeconds: (row.ages ?? []).map((a) => ({ queue: a.queue, seconds: Math.max(0, a.seconds) })),
    workers: { active: row.active, stale: row.stale },
    runsStuck: row.stuck,
  };
}
