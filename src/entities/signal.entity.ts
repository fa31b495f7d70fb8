import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** A signal a run received (`POST /api/runs/:id/signals/:name`); the first of a name is the one a waiting step takes. */
@Entity({ name: 'signals', schema: 'drover' })
@Index('signals_run_name_idx', ['runId', 'name', 'id'])
export class SignalEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column({ name: 'run_id', type: 'uuid' }) runId!: string;
  @Column({ type: 'varchar', length: 64 }) name!: string;
  @Column({ type: 'jsonb', nullable: true }) payload!: unknown;
  /** Who sent it (`api:<key name>`, `cli`, `client`, …). */
  @Column({ type: 'varchar', length: 160 }) actor!: string;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
}
