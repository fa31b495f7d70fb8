import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `runs.generation` counted resumes but nothing read it: a resume's new
 * generation lives on each step it restarts (`steps.generation`, part of the
 * job id) and the `run.retried` audit events count the resumes.
 */
export class DropRunGeneration1764600000000 implements MigrationInterface {
  name = 'DropRunGeneration1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.runs DROP COLUMN generation`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.runs ADD COLUMN generation integer NOT NULL DEFAULT 0`);
    await q.query(`
      UPDATE drover.runs r SET generation = (SELECT count(*) FROM drover.audit_events a WHERE a.run_id = r.id AND a.type = 'run.retried')`);
  }
}
