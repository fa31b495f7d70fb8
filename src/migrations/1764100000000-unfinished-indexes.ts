import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes that let most state changes be HOT updates.
 *
 * Postgres rewrites every index of a row whose update touches an indexed
 * column (a key or a partial index's predicate). `status` was in three such
 * indexes, so each start, success and finish of a step or run wrote every
 * index of its table. The live sets the reconciler and the open-run listing
 * need are now partial indexes on `finished_at IS NULL`: a start changes no
 * indexed column (HOT), and only the final transition of a row writes its
 * indexes. Check constraints keep `finished_at` in step with `status`, so the
 * predicate means "not terminal".
 */
export class UnfinishedIndexes1764100000000 implements MigrationInterface {
  name = 'UnfinishedIndexes1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE drover.runs ADD CONSTRAINT runs_timestamps_check
        CHECK ((finished_at IS NULL) = (status IN ('pending', 'running')))`);
    await q.query(`
      ALTER TABLE drover.steps ADD CONSTRAINT steps_timestamps_check
        CHECK ((finished_at IS NULL) = (status IN ('pending', 'queued', 'running')))`);
    await q.query(`DROP INDEX drover.runs_status_created_idx`);
    await q.query(`DROP INDEX drover.runs_open_idx`);
    await q.query(`CREATE INDEX runs_unfinished_idx ON drover.runs (created_at DESC, id DESC) WHERE finished_at IS NULL`);
    await q.query(`DROP INDEX drover.steps_live_idx`);
    await q.query(`CREATE INDEX steps_unfinished_idx ON drover.steps (queued_at) WHERE finished_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX drover.steps_unfinished_idx`);
    await q.query(`CREATE INDEX steps_live_idx ON drover.steps (status, queued_at) WHERE status IN ('queued','running')`);
    await q.query(`DROP INDEX drover.runs_unfinished_idx`);
    await q.query(`CREATE INDEX runs_open_idx ON drover.runs (created_at) WHERE status IN ('pending','running')`);
    await q.query(`CREATE INDEX runs_status_created_idx ON drover.runs (status, created_at DESC, id DESC)`);
    await q.query(`ALTER TABLE drover.steps DROP CONSTRAINT steps_timestamps_check`);
    await q.query(`ALTER TABLE drover.runs DROP CONSTRAINT runs_timestamps_check`);
  }
}
