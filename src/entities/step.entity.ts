import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { StepStatus } from '../states';

/** Per-step options kept with the row (resolved defaults). */
export interface StepOptionsJson {
  backoff: { type: 'fixed' | 'exponential'; delayMs: number };
  delayMs: number;
  timeoutMs: number | null;
  priority: number;
}

/** One step of a run; its state changes only through fenced updates. */
@Entity({ name: 'steps', schema: 'drover' })
@Index('steps_run_name_key', ['runId', 'name'], { unique: true })
export class StepEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ name: 'run_id', type: 'uuid' }) runId!: string;
  @Column({ type: 'varchar', length: 64 }) name!: string;
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
}
