import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `runs_workspace_workflow_idx`: the runs of one workflow in one workspace,
 * newest first. Without it a list filtered on both walked the workspace's
 * whole history when the pair was rare or absent (a tenant that never ran a
 * workflow): 1.0 s on a million runs (`npm run bench:read`), now one index
 * range. Only run creation writes it; no step transition does.
 */
export class RunsTenantIndex1765700000000 implements MigrationInterface {
  name = 'RunsTenantIndex1765700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX runs_workspace_workflow_idx ON drover.runs (workspace, workflow, created_at DESC, id DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX drover.runs_workspace_workflow_idx`);
  }
}
