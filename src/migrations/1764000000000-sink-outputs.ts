import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Lets a step's success finish its run in the same statement.
 *
 * `steps.sink` marks the steps no other step depends on. When a sink succeeds,
 * its output is merged into `runs.output` by the same `UPDATE` that lowers the
 * run's open-step counter: the run row is the one place every success of a run
 * serialises on, so the last success sees every sink output there, whatever the
 * statement snapshots saw. `runs.output` therefore holds the sink outputs so
 * far while a run is open (the API shows it only once the run has succeeded).
 */
export class SinkOutputs1764000000000 implements MigrationInterface {
  name = 'SinkOutputs1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.steps ADD COLUMN sink boolean NOT NULL DEFAULT false`);
    await q.query(`
      UPDATE drover.steps s SET sink = true
       WHERE NOT EXISTS (SELECT 1 FROM drover.steps o WHERE o.run_id = s.run_id AND o.depends_on @> ARRAY[s.name]::text[])`);
    await q.query(`
      UPDATE drover.runs r SET output = (
        SELECT jsonb_object_agg(s.name, s.output) FROM drover.steps s
         WHERE s.run_id = r.id AND s.sink AND s.status = 'succeeded')
       WHERE r.status <> 'succeeded'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE drover.runs SET output = NULL WHERE status <> 'succeeded'`);
    await q.query(`ALTER TABLE drover.steps DROP COLUMN sink`);
  }
}
