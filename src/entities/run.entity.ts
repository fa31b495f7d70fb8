import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { RunStatus } from '../states';

/** One run of a workflow: its input, snapshot of the definition, and outcome. */
@Entity({ name: 'runs', schema: 'drover' })
@Index('runs_created_idx', ['createdAt', 'id'])
export class RunEntity {
  @PrimaryColumn({ type: 'uuid' }) id!: string;
  @Column({ type: 'varchar', length: 64 }) workflow!: string;
  /** Hash of the definition the run started with. */
  @Column({ name: 'workflow_version', type: 'varchar', length: 64 }) workflowVersion!: string;
  /** Snapshot of the workflow definition at creation. */
  @Column({ type: 'jsonb' }) definition!: unknown;
  @Column({ type: 'varchar', length: 16 }) status!: RunStatus;
  @Column({ type: 'jsonb', nullable: true }) input!: Record<string, unknown> | null;
  /** The outputs of its sink steps by name; filled as they succeed, shown once the run has succeeded. */
  @Column({ type: 'jsonb', nullable: true }) output!: Record<string, unknown> | null;
  @Column({ type: 'jsonb', nullable: true }) error!: unknown;
  @Column({ type: 'varchar', length: 64, default: 'default' }) workspace!: string;
  @Column({ type: 'integer', default: 0 }) priority!: number;
  @Column({ name: 'delay_ms', type: 'integer', default: 0 }) delayMs!: number;
  @Column({ name: 'idempotency_key', type: 'varchar', length: 255, nullable: true }) idempotencyKey!: string | null;
  /** Steps not yet terminal; the run finishes when it reaches 0. */
  @Column({ name: 'open_steps', type: 'integer' }) openSteps!: number;
  /** Steps that failed for good in the current generation. */
  @Column({ name: 'failed_steps', type: 'integer', default: 0 }) failedSteps!: number;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt!: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt!: Date | null;
  /** A child run (a `run` step started it): the parent run and step. */
  @Column({ name: 'parent_run_id', type: 'uuid', nullable: true }) parentRunId!: string | null;
  @Column({ name: 'parent_step_id', type: 'uuid', nullable: true }) parentStepId!: string | null;
}
