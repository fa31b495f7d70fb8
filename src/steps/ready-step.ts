import type { StepOptionsJson } from '../entities/step.entity';

/** A step ready to be enqueued (what the dispatcher needs). */
export interface ReadyStep {
  id: string;
  runId: string;
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
}

/** The step columns a ReadyStep is made of (select them, with `run_priority`, for `toReadyStep`). */
export const READY_COLUMNS = `id, run_id, processor, queue, generation, attempt, max_attempts, options`;

/** Maps a row with READY_COLUMNS (and run_priority) to a ReadyStep. */
export function toReadyStep(row: any, runPriority = row.run_priority ?? 0): ReadyStep {
  return {
    id: row.id, runId: row.run_id, processor: row.processor, queue: row.queue, generation: row.generation,
    attempt: row.attempt, maxAttempts: row.max_attempts, options: row.options, runPriority,
  };
}
