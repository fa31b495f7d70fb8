import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { WorkerStatus } from '../states';

/** A worker process in the registry, kept alive by its heartbeat. */
@Entity({ name: 'workers', schema: 'drover' })
@Index('workers_status_heartbeat_idx', ['status', 'lastHeartbeatAt'])
export class WorkerEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 }) id!: string;
  @Column({ type: 'varchar', length: 255 }) hostname!: string;
  @Column({ type: 'integer' }) pid!: number;
  @Column({ type: 'text', array: true }) queues!: string[];
  @Column({ type: 'integer' }) concurrency!: number;
  /** Processors the worker has: a queued step whose processor no live worker of its queue has waits (and says so). */
  @Column({ type: 'text', array: true, default: () => "'{}'" }) processors!: string[];
  @Column({ type: 'varchar', length: 32 }) version!: string;
  @Column({ type: 'varchar', length: 16 }) status!: WorkerStatus;
  @Column({ name: 'started_at', type: 'timestamptz', default: () => 'now()' }) startedAt!: Date;
  @Column({ name: 'last_heartbeat_at', type: 'timestamptz', default: () => 'now()' }) lastHeartbeatAt!: Date;
  @Column({ name: 'stopped_at', type: 'timestamptz', nullable: true }) stoppedAt!: Date | null;
}
