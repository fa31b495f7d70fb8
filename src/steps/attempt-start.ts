import { hotQuery, type Queryable } from '../db/sql';
import type { StartedStep, StartRequest } from './step-store';

/**
 * What `readStarts` found for one job: a `queued` step the attempt may run
 * without writing its start (`recorded: false`; its outcome writes it), or
 * `'running'`: the step is `running` already (a takeover), whose start must be
 * written (`markStepsRunning`) so the attempt is counted; also a step under flow
 * control (concurrency keys, rate limits), whose start is fenced on its place
 * in `markStepsRunning` (`drover.flow_may_start`).
 */
export type ReadStart = StartedStep | 'running';

/**
 * The one-write path's start: reads what an attempt needs (the step, its run's
 * input, its parents' outputs) for the jobs a worker has in hand, in one
 * read-only statement: no row is locked or written. The outcome statement
 * fences on what was read (the step still `queued` in this generation at this
 * attempt count), so a step moved meanwhile (cancelled, started by another
 * delivery, a newer generation) drops this attempt's result.
 * @returns by lease; a lease that is absent has nothing to run (finished,
 *   cancelled, another generation, or a job that does not match its step).
 */
export async function readStarts(q: Queryable, starts: StartRequest[]): Promise<Map<string, ReadStart>> {
  const rows = await hotQuery(q, 'drover_read_starts', `
    SELECT req.lease, st.id, st.run_id, st.name, st.processor, st.status, st.attempt, st.max_attempts, st.options, st.options ? 'flow' AS flow,
           (extract(epoch FROM st.queued_at) * 1000)::float8 AS queued_at_ms, runs.input, runs.workflow, runs.workspace,
           CASE WHEN st.status <> 'queued' OR cardinality(st.depends_on) = 0 THEN '{}'::jsonb ELSE
             COALESCE((SELECT jsonb_object_agg(p.name, p.output) FROM drover.steps p
                        WHERE p.run_id = st.run_id AND p.name = ANY (st.depends_on)), '{}'::jsonb) END AS parents
      FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::uuid[], $5::text[]) AS req(id, generation, lease, run_id, processor)
      JOIN drover.steps st ON st.id = req.id AND st.generation = req.generation AND st.run_id = req.run_id
                          AND st.processor = req.processor AND st.status IN ('queued', 'running')
      JOIN drover.runs ON runs.id = st.run_id`,
  [starts.map((r) => r.stepId), starts.map((r) => r.generation), starts.map((r) => r.lease), starts.map((r) => r.runId),
    starts.map((r) => r.processor)]);
  return new Map(rows.map((row): [string, ReadStart] => [row.lease, row.status === 'running' || row.flow ? 'running' : {
    id: row.id, runId: row.run_id, name: row.name, processor: row.processor, attempt: row.attempt + 1,
    maxAttempts: row.max_attempts, options: row.options, queuedAtMs: row.queued_at_ms, input: row.input,
    workflow: row.workflow, workspace: row.workspace, parents: row.parents, takeover: false, recorded: false,
  }]));
}
