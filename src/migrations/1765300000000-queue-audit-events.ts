import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Operators' actions on whole queues through Bull Board (pause, resume, empty,
 * clean, obliterate) belong to no run: their audit events have a null
 * `run_id`. Those events get a small index of their own.
 */
export class QueueAuditEvents1765300000000 implements MigrationInterface {
  name = 'QueueAuditEvents1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.audit_events ALTER COLUMN run_id DROP NOT NULL`);
    await q.query(`CREATE INDEX audit_events_queue_idx ON drover.audit_events (id) WHERE run_id IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX drover.audit_events_queue_idx`);
    // Events without a run cannot be kept under NOT NULL, and the table is append-only: refuse rather than lose them.
    const [row] = await q.query(`SELECT count(*)::int AS n FROM drover.audit_events WHERE run_id IS NULL`);
    if (row.n > 0) throw new Error(`cannot revert: ${row.n} queue audit events have no run (the audit trail is append-only)`);
    await q.query(`ALTER TABLE drover.audit_events ALTER COLUMN run_id SET NOT NULL`);
  }
}
