import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/** A registered version of a workflow definition (registered by workers at start-up). */
@Entity({ name: 'workflows', schema: 'drover' })
@Index('workflows_name_registered_idx', ['name', 'registeredAt'])
export class WorkflowEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 }) name!: string;
  /** Hash of the canonical definition. */
  @PrimaryColumn({ type: 'varchar', length: 64 }) version!: string;
  @Column({ type: 'jsonb' }) definition!: unknown;
  /** The version's input JSON Schema (null: none); part of the version's hash. */
  @Column({ name: 'input_schema', type: 'jsonb', nullable: true }) inputSchema!: unknown;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  /**
   * When this version (hash) was first registered; the newest is the current one.
   * Registering a known version again (an old pod restarting) changes nothing.
   */
  @Column({ name: 'registered_at', type: 'timestamptz', default: () => 'now()' }) registeredAt!: Date;
}
