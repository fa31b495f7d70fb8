import type { Job } from 'bullmq';
import { isUuid } from '../json';
import { jobIdOf } from '../queue/dispatcher';
import type { StepJobData } from '../queue/queue-backend';

/**
 * Why a job was refused before anything ran:
 * - `malformed`: its data lacks a step id, run id or generation of the right type;
 * - `job_id_mismatch`: its id is not its step's own job id (`<stepId>-g<generation>`);
 * - `unknown_step`: no such step;
 * - `run_mismatch`: the step belongs to another run than the job claims;
 * - `processor_mismatch`: the job names another processor than its step's.
 */
export type JobRejection = 'malformed' | 'job_id_mismatch' | 'unknown_step' | 'run_mismatch' | 'processor_mismatch';

/** Every `JobRejection`, for the metric's documentation and tests. */
export const JOB_REJECTIONS: readonly JobRejection[] = ['malformed', 'job_id_mismatch', 'unknown_step', 'run_mismatch', 'processor_mismatch'];

/** The fields of a job a worker relies on, once checked. */
export interface CheckedJob {
  stepId: string;
  runId: string;
  generation: number;
  /** The processor the job names (jobs of earlier versions are named after it). */
  processor: string;
}

/**
 * The checks a job passes before its start is even asked for (no database
 * needed): well-formed data, and the job id its step would have. A job
 * anyone added with another id (Bull Board's "add", a script) cannot start a
 * delayed step early or take over a running attempt: the real job of a step
 * holds that id, and BullMQ keeps one job per id. Whether the step is live,
 * of the claimed run and of the claimed processor is fenced in the start
 * statement itself.
 */
export function checkJob(job: Pick<Job<StepJobData>, 'id' | 'name' | 'data'>): CheckedJob | JobRejection {
  const data = job.data as Partial<Record<keyof StepJobData, unknown>> | null | undefined;
  if (!data || typeof data !== 'object') return 'malformed';
  const { stepId, runId, generation } = data;
  if (typeof stepId !== 'string' || !isUuid(stepId) || typeof runId !== 'string' || !isUuid(runId)) return 'malformed';
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) return 'malformed';
  const processor = data.processor === undefined ? job.name : data.processor;
  if (typeof processor !== 'string' || processor === '') return 'malformed';
  if (job.id !== jobIdOf(stepId, generation)) return 'job_id_mismatch';
  return { stepId, runId, generation, processor };
}
