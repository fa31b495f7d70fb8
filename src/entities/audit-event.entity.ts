import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * An immutable record of one transition. A database trigger refuses UPDATE,
 * DELETE and TRUNCATE on this table; drover's code only inserts. The table is
 * partitioned by month of `at` (its primary key is `(id, at)`; ids stay unique,
 * from one identity); retention drops whole old partitions.
 */
@Entity({ name: 'audit_events', schema: 'drover' })
@Index('audit_events_run_idx', ['runId', 'id'])
export class AuditEventEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ type: 'timestamptz', default: () => 'clock_timestamp()' }) at!: Date;
  /** Dotted event type, e.g. `step.succeeded`. */
  @Column({ type: 'varchar', length: 64 }) type!: string;
  /** The run; null for an operator's action on a whole queue (`queue.paused`, …). */
  @Column({ name: 'run_id', type: 'uuid', nullable: true }) runId!: string | null;
  @Column({ name: 'step_id', type: 'uuid', nullable: true }) stepId!: string | null;
  /** Who made the transition: `api:<key name>`, `worker:<id>`, `reconciler`, `client`. */
  @Column({ type: 'varchar', length: 160 }) actor!: string;
  @Column({ type: 'jsonb', nullable: true }) data!: unknown;
}
