import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A failed run's error names its first failed step and that step's code
 * (`RunError.step`, `.code`). Runs that failed before this version get them
 * too, from their failed steps (by `finished_at`, then name), so every failed
 * run's error has the same shape. Down leaves the extra fields (harmless).
 */
export class RunErrorStep1766700000000 implements MigrationInterface {
  name = 'RunErrorStep1766700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      UPDATE drover.runs r SET error = r.error || f.fields
        FROM (SELECT DISTINCT ON (s.run_id) s.run_id, jsonb_strip_nulls(jsonb_build_object('step', s.name, 'code', s.error->>'code')) AS fields
                FROM drover.steps s JOIN drover.runs x ON x.id = s.run_id
               WHERE x.status = 'failed' AND jsonb_typeof(x.error) = 'object' AND NOT x.error ? 'step' AND s.status = 'failed'
               ORDER BY s.run_id, s.finished_at, s.name) f
       WHERE r.id = f.run_id`);
  }

  async down(): Promise<void> {
    // The fields stay: older code reads only message and failedSteps.
  }
}
