import type { StepFlowJson } from '../flow/flow-spec';
import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { StepStatus } from '../states';

/** Per-step options kept with the row (resolved defaults). */
export interface StepOptionsJson {
  backoff: { type: 'fixed' | 'exponential'; delayMs: number };
  delayMs: number;
  timeoutMs: number | null;
  priority: number;
  /** The step's `params` (typed workflows, plain `params`); absent when none. */
  params?: Record<string, unknown>;
  /** How the step joins its parents (CONTRACT §7); absent: `all_succeeded`. */
  join?: JoinPolicy;
  /** A map step: the array's path, the elements' processor, how many run at once. */
  map?: { over: string; processor: string; concurrency?: number };
  /** A child-run step: the workflow and where its input comes from. */
  run?: { workflow: string; input?: string };
  /** A sleep step. */
  sleep?: { ms?: number; until?: string };
  /** A signal step. */
  waitFor?: { signal: string; timeoutMs?: number };
  /** A map element: its index and item. */
  element?: { index: number; item: unknown };
  /** The onFailure step: what failed. */
  failure?: unknown;
  /** The flow control the step is under in its run (concurrency keys, rate limits); absent when none. */
  flow?: StepFlowJson;
}

/** How a step with dependencies decides it may run. */
export type JoinPolicy = 'all_succeeded' | 'all_settled' | 'any_succeeded';

/** One step of a run; its state changes only through fenced updates. */
@Entity({ name: 'steps', schema: 'drover' })
@Index('steps_run_name_key', ['runId', 'name'], { unique: true })
export class StepEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ name: 'run_id', type: 'uuid' }) runId!: string;
  /** The step's name; a map element's is `<map>[<index>]`. */
  @Column({ type: 'varchar', length: 80 }) name!: string;
  @Column({ type: 'varchar', length: 128 }) processor!: string;
  @Column({ type: 'varchar', length: 64 }) queue!: string;
  @Column({ type: 'varchar', length: 16 }) status!: StepStatus;
  @Column({ name: 'depends_on', type: 'text', array: true }) dependsOn!: string[];
  /** Dependencies that have not succeeded yet; the step is queued at 0. */
  @Column({ name: 'deps_remaining', type: 'integer' }) depsRemaining!: number;
  /** No step depends on this one: its output is part of the run's output. */
  @Column({ type: 'boolean', default: false }) sink!: boolean;
  /** The current (or last) attempt, counted from 1; 0 before the first start. */
  @Column({ type: 'integer', default: 0 }) attempt!: number;
  @Column({ name: 'max_attempts', type: 'integer' }) maxAttempts!: number;
  /** Bumped when a retry (resume) restarts the step; part of the job id. */
  @Column({ type: 'integer', default: 0 }) generation!: number;
  @Column({ type: 'jsonb' }) options!: StepOptionsJson;
  @Column({ type: 'jsonb', nullable: true }) output!: unknown;
  @Column({ type: 'jsonb', nullable: true }) error!: unknown;
  /** Token of the execution that holds the step while `running`. */
  @Column({ type: 'uuid', nullable: true }) lease!: string | null;
  @Column({ name: 'worker_id', type: 'varchar', length: 64, nullable: true }) workerId!: string | null;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  @Column({ name: 'queued_at', type: 'timestamptz', nullable: true }) queuedAt!: Date | null;
  /** After a failed attempt: when the next may start (Postgres' clock; a job delivered earlier is delayed again). */
  @Column({ name: 'available_at', type: 'timestamptz', nullable: true }) availableAt!: Date | null;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt!: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
  /** A sleep's wake time, or a signal wait's deadline (Postgres' clock). */
  @Column({ name: 'wake_at', type: 'timestamptz', nullable: true }) wakeAt!: Date | null;
  /** A map element: the map step it belongs to, and its index in the array. */
  @Column({ name: 'map_of', type: 'uuid', nullable: true }) mapOf!: string | null;
  @Column({ name: 'map_index', type: 'integer', nullable: true }) mapIndex!: number | null;
}
