import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { CatchUpPolicy, OverlapPolicy } from '../schedules/schedule-definition';

/** A cron schedule (CONTRACT §8): its definition, state and the tick it fires next. */
@Entity({ name: 'schedules', schema: 'drover' })
export class ScheduleEntity {
  @PrimaryColumn({ type: 'varchar', length: 64 }) name!: string;
  @Column({ type: 'varchar', length: 64 }) workflow!: string;
  /** Five fields, or six with seconds first. */
  @Column({ type: 'varchar', length: 128 }) cron!: string;
  @Column({ type: 'varchar', length: 64, default: 'UTC' }) timezone!: string;
  @Column({ type: 'jsonb', default: () => "'{}'" }) input!: Record<string, unknown>;
  @Column({ type: 'varchar', length: 64, default: 'default' }) workspace!: string;
  @Column({ type: 'varchar', length: 16, default: 'skip' }) overlap!: OverlapPolicy;
  @Column({ name: 'catch_up', type: 'varchar', length: 16, default: 'latest' }) catchUp!: CatchUpPolicy;
  /** `api` or `module`. */
  @Column({ type: 'varchar', length: 16, default: 'api' }) source!: 'api' | 'module';
  @Column({ type: 'boolean', default: false }) paused!: boolean;
  @Column({ name: 'next_fire_at', type: 'timestamptz' }) nextFireAt!: Date;
  /** The tick time of the last run made, and when it was made. */
  @Column({ name: 'last_fire_at', type: 'timestamptz', nullable: true }) lastFireAt!: Date | null;
  @Column({ name: 'last_fired_at', type: 'timestamptz', nullable: true }) lastFiredAt!: Date | null;
  @Column({ name: 'last_run_id', type: 'uuid', nullable: true }) lastRunId!: string | null;
  /** Its latest runs (up to 10), newest first. */
  @Column({ name: 'recent_run_ids', type: 'uuid', array: true, default: () => "'{}'" }) recentRunIds!: string[];
  @Column({ name: 'last_lag_ms', type: 'integer', nullable: true }) lastLagMs!: number | null;
  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'now()' }) createdAt!: Date;
  @Column({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' }) updatedAt!: Date;
}
