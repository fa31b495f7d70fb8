import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One `ctx.log` line of a step's attempt (kept apart from the audit trail; deleted with its run). */
@Entity({ name: 'step_logs', schema: 'drover' })
@Index('step_logs_step_idx', ['stepId', 'id'])
export class StepLogEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ name: 'run_id', type: 'uuid' }) runId!: string;
  @Column({ name: 'step_id', type: 'uuid' }) stepId!: string;
  @Column({ type: 'integer' }) attempt!: number;
  @Column({ type: 'timestamptz', default: () => 'clock_timestamp()' }) at!: Date;
  @Column({ type: 'text' }) message!: string;
}
