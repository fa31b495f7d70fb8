import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each registered workflow version may carry the JSON Schema of its input
 * (from a typed workflow's zod schema, or a plain definition's `inputSchema`):
 * runs whose input does not match are refused with `invalid_input`. Older
 * versions have none (null), and accept any JSON object as before.
 */
export class WorkflowInputSchema1765500000000 implements MigrationInterface {
  name = 'WorkflowInputSchema1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.workflows ADD COLUMN input_schema jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.workflows DROP COLUMN input_schema`);
  }
}
