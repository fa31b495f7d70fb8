// SQL fragments the step transitions share (src/steps/step-store.ts): the outcome fence, the
// columns an unrecorded attempt's outcome writes, the run-row locks that come first, the flow fence.

/** The fence of an outcome statement: `running` under the lease, or still `queued` as an unrecorded attempt saw it. */
export const OUTCOME_FENCE = (st: string, lease: string, seen: string, generation: string) => `CASE WHEN ${seen} IS NULL
              THEN ${st}.status = 'running' AND ${st}.lease = ${lease}
              ELSE ${st}.status = 'queued' AND ${st}.generation = ${generation} AND ${st}.attempt = ${seen} END`;
/** The columns an outcome writes besides its own: the attempt's start when it was not written (`seen` set). */
export const OUTCOME_START = (st: string, lease: string, seen: string, elapsed: string, worker: string) => `lease = ${lease},
               attempt = ${st}.attempt + CASE WHEN ${seen} IS NULL THEN 0 ELSE 1 END,
               worker_id = CASE WHEN ${seen} IS NULL THEN ${st}.worker_id ELSE ${worker} END,
               started_at = CASE WHEN ${seen} IS NULL THEN ${st}.started_at ELSE now() - make_interval(secs => ${elapsed} / 1000) END`;

/**
 * The first CTE of a statement that locks steps of several runs: their run
 * rows, in id order (`$1` holds the step ids). The lock order, atop StepStore.
 */
export const RUN_LOCKS = `run_locks AS (
        SELECT id, workflow, status FROM drover.runs WHERE id IN (SELECT run_id FROM drover.steps WHERE id = ANY ($1::uuid[]))
         ORDER BY id FOR NO KEY UPDATE`;
/** The start fence of flow control (src/flow): a step under it starts only with its place and its rate record. */
export const FLOW_MAY_START = `CASE WHEN st.options ? 'flow' THEN drover.flow_may_start(st.id, st.run_id, st.generation, st.attempt, st.options->'flow') ELSE true END`;
/** The condition that makes a step part of a statement wait for `run_locks` (an InitPlan, run first). */
export const AFTER_RUN_LOCKS = `(SELECT count(*) FROM run_locks) >= 0`;
