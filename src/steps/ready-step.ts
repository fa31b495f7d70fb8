import type { StepOptionsJson } from '../entities/step.entity';

/** A step ready to be enqueued (what the dispatcher needs). */
export interface ReadyStep {
  id: string;
  runId: string;
  /** The run's workflow name (for the job's name and data, which Bull Board shows). */
  workflow: string;
  /** The step's name in its workflow. */
  name: string;
  processor: string;
  queue: string;
  generation: number;
  attempt: number;
  maxAttempts: number;
  options: StepOptionsJson;
  /** The run's priority (a step's own priority wins when set). */
  runPriority: number;
  /** Extra delay for root steps: the run's `delayMs`. */
  extraDelayMs?: number;
  /** The trace context its job carries (the attempt that promoted it), when tracing is on. */
  traceMetadata?: string;
}

/**
 * The step columns a ReadyStep is made of. Select them with the run's
 * `workflow` and `run_priority` (from the run row the statement already
 * touches: no extra round trip) for `toReadyStep`.
 */
export const READY_COLUMNS = `id, run_id, name, processor, queue, generation, attempt, max_attempts, options`;

/** Maps a row with READY_COLUMNS (and `workflow`, `run_priority`) to a ReadyStep. */
export function toReadyStep(row: any, runPriority = row.run_priority ?? 0, workflow: string = row.workflow): ReadyStep {
  return {
    id: row.id, runId: row.run_id, workflow, name: row.name, processor: row.processor, queue: row.queue, generation: row.generation,
    attempt: row.attempt, maxAttempts: row.max_attempts, options: row.options, runPriority,
  };
}
