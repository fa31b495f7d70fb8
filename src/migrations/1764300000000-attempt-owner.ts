import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Postgres owns a step's attempts and the time its next attempt may start
 * (`steps.available_at`, set from Postgres' clock when a failed attempt is
 * recorded; BullMQ only carries the job). Workers record the processors they
 * have (`workers.processors`), so a run can say why a queued step waits.
 */
export class AttemptOwner1764300000000 implements MigrationInterface {
  name = 'AttemptOwner1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.steps ADD COLUMN available_at timestamptz`);
    await q.query(`ALTER TABLE drover.workers ADD COLUMN processors text[] NOT NULL DEFAULT '{}'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.workers DROP COLUMN processors`);
    await q.query(`ALTER TABLE drover.steps DROP COLUMN available_at`);
  }
}
