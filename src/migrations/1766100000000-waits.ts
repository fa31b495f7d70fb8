import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Dynamic graphs and waits (CONTRACT §7):
 * - `steps.wake_at`: when a sleeping step wakes, or when a signal wait times out (Postgres' clock);
 * - `steps.map_of`, `steps.map_index`: the elements of a map step are step rows of their own
 *   (named `<map>[<index>]`, so the name column widens to 80);
 * - `runs.parent_run_id`, `runs.parent_step_id`: a child run's parent (indexed, for `children`);
 * - `drover.signals`: every signal a run received (the first of a name wins), kept with the run.
 */
export class Waits1766100000000 implements MigrationInterface {
  name = 'Waits1766100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.steps ALTER COLUMN name TYPE varchar(80)`);
    await q.query(`ALTER TABLE drover.steps ADD COLUMN wake_at timestamptz, ADD COLUMN map_of uuid, ADD COLUMN map_index integer`);
    await q.query(`CREATE INDEX steps_map_of_idx ON drover.steps (map_of, map_index) WHERE map_of IS NOT NULL`);
    await q.query(`ALTER TABLE drover.runs ADD COLUMN parent_run_id uuid, ADD COLUMN parent_step_id uuid`);
    await q.query(`CREATE INDEX runs_parent_idx ON drover.runs (parent_run_id, created_at) WHERE parent_run_id IS NOT NULL`);
    await q.query(`
      CREATE TABLE drover.signals (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES drover.runs(id) ON DELETE CASCADE,
        name varchar(64) NOT NULL,
        payload jsonb,
        actor varchar(160) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX signals_run_name_idx ON drover.signals (run_id, name, id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE drover.signals`);
    await q.query(`DROP INDEX drover.runs_parent_idx`);
    await q.query(`ALTER TABLE drover.runs DROP COLUMN parent_run_id, DROP COLUMN parent_step_id`);
    await q.query(`DROP INDEX drover.steps_map_of_idx`);
    await q.query(`ALTER TABLE drover.steps DROP COLUMN wake_at, DROP COLUMN map_of, DROP COLUMN map_index`);
    await q.query(`ALTER TABLE drover.steps ALTER COLUMN name TYPE varchar(64)`);
  }
}
