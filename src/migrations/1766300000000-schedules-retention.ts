import type { MigrationInterface, QueryRunner } from 'typeorm';

/** How many months of audit partitions exist ahead of the current one after this migration (maintenance keeps it so). */
const MONTHS_AHEAD = 2;

/**
 * Time and bounds (CONTRACT §8 schedules, §9 retention):
 * - `drover.schedules`: cron schedules, one row each, locked by the tick that fires it;
 * - `drover.step_logs`: `ctx.log` lines, apart from the immutable audit trail, deleted with their run;
 * - `runs_retention_idx`: finished runs by finish time, for retention's batches;
 * - `drover.audit_events` becomes partitioned by month on `at` (primary key `(id, at)`), so old
 *   history goes by detaching and dropping a whole partition. The existing rows are copied into
 *   it; the append-only triggers (row UPDATE/DELETE, TRUNCATE) and the statement-level NOTIFY
 *   doorbell of the dashboard are recreated on the partitioned table; ids continue where they were.
 */
export class SchedulesRetention1766300000000 implements MigrationInterface {
  name = 'SchedulesRetention1766300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE drover.schedules (
        name varchar(64) PRIMARY KEY,
        workflow varchar(64) NOT NULL,
        cron varchar(128) NOT NULL,
        timezone varchar(64) NOT NULL DEFAULT 'UTC',
        input jsonb NOT NULL DEFAULT '{}',
        workspace varchar(64) NOT NULL DEFAULT 'default',
        overlap varchar(16) NOT NULL DEFAULT 'skip' CONSTRAINT schedules_overlap_check CHECK (overlap IN ('skip','allow','cancel_previous')),
        catch_up varchar(16) NOT NULL DEFAULT 'latest' CONSTRAINT schedules_catch_up_check CHECK (catch_up IN ('none','latest','all')),
        source varchar(16) NOT NULL DEFAULT 'api' CONSTRAINT schedules_source_check CHECK (source IN ('api','module')),
        paused boolean NOT NULL DEFAULT false,
        next_fire_at timestamptz NOT NULL,
        last_fire_at timestamptz,
        last_fired_at timestamptz,
        last_run_id uuid,
        recent_run_ids uuid[] NOT NULL DEFAULT '{}',
        last_lag_ms integer,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX schedules_due_idx ON drover.schedules (next_fire_at) WHERE NOT paused`);

    await q.query(`
      CREATE TABLE drover.step_logs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES drover.runs(id) ON DELETE CASCADE,
        step_id uuid NOT NULL,
        attempt integer NOT NULL,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        message text NOT NULL
      )`);
    await q.query(`CREATE INDEX step_logs_step_idx ON drover.step_logs (step_id, id)`);
    await q.query(`CREATE INDEX step_logs_run_idx ON drover.step_logs (run_id)`);
    await q.query(`CREATE INDEX runs_retention_idx ON drover.runs (finished_at) WHERE finished_at IS NOT NULL`);
    await q.query(`CREATE INDEX workers_stopped_idx ON drover.workers (stopped_at) WHERE status <> 'active'`);

    // The audit trail, partitioned by month.
    await q.query(`ALTER TABLE drover.audit_events RENAME TO audit_events_unpartitioned`);
    await q.query(`ALTER INDEX drover.audit_events_run_idx RENAME TO audit_events_unpartitioned_run_idx`);
    await q.query(`ALTER INDEX drover.audit_events_queue_idx RENAME TO audit_events_unpartitioned_queue_idx`);
    await q.query(`ALTER TABLE drover.audit_events_unpartitioned RENAME CONSTRAINT audit_events_pkey TO audit_events_unpartitioned_pkey`);
    await q.query(`
      CREATE TABLE drover.audit_events (
        id bigint GENERATED ALWAYS AS IDENTITY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        type varchar(64) NOT NULL,
        run_id uuid,
        step_id uuid,
        actor varchar(160) NOT NULL,
        data jsonb,
        CONSTRAINT audit_events_pkey PRIMARY KEY (id, at)
      ) PARTITION BY RANGE (at)`);
    await q.query(`CREATE INDEX audit_events_run_idx ON drover.audit_events (run_id, id)`);
    await q.query(`CREATE INDEX audit_events_queue_idx ON drover.audit_events (id) WHERE run_id IS NULL`);
    await q.query(`
      CREATE FUNCTION drover.ensure_audit_partition(month date) RETURNS boolean LANGUAGE plpgsql AS $$
      DECLARE
        start_at date := date_trunc('month', month)::date;
        part text := 'audit_events_p' || to_char(start_at, 'YYYY_MM');
      BEGIN
        IF to_regclass('drover.' || part) IS NOT NULL THEN RETURN false; END IF;
        EXECUTE format('CREATE TABLE drover.%I PARTITION OF drover.audit_events FOR VALUES FROM (%L) TO (%L)',
          part, start_at::timestamp AT TIME ZONE 'UTC', (start_at + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        RETURN true;
      END $$`);
    // Bounds are UTC months: the session time zone does not move them.
    await q.query(`
      SELECT drover.ensure_audit_partition(m::date)
        FROM generate_series(
          date_trunc('month', COALESCE((SELECT min(at) FROM drover.audit_events_unpartitioned), now()) AT TIME ZONE 'UTC'),
          date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => ${MONTHS_AHEAD}),
          interval '1 month') AS m`);
    await q.query(`
      INSERT INTO drover.audit_events (id, at, type, run_id, step_id, actor, data) OVERRIDING SYSTEM VALUE
      SELECT id, at, type, run_id, step_id, actor, data FROM drover.audit_events_unpartitioned ORDER BY id`);
    await q.query(`SELECT setval(pg_get_serial_sequence('drover.audit_events', 'id'), GREATEST((SELECT max(id) FROM drover.audit_events_unpartitioned), 0) + 1, false)`);
    await q.query(`DROP TABLE drover.audit_events_unpartitioned`);
    // Append-only as before: rows are never updated nor deleted; only whole old partitions are dropped.
    await q.query(`CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON drover.audit_events
      FOR EACH ROW EXECUTE FUNCTION drover.audit_events_immutable()`);
    await q.query(`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON drover.audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION drover.audit_events_immutable()`);
    await q.query(`CREATE TRIGGER audit_events_notify AFTER INSERT ON drover.audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION drover.audit_events_notify()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE drover.audit_events RENAME TO audit_events_partitioned`);
    await q.query(`ALTER TABLE drover.audit_events_partitioned RENAME CONSTRAINT audit_events_pkey TO audit_events_partitioned_pkey`);
    await q.query(`ALTER INDEX drover.audit_events_run_idx RENAME TO audit_events_partitioned_run_idx`);
    await q.query(`ALTER INDEX drover.audit_events_queue_idx RENAME TO audit_events_partitioned_queue_idx`);
    await q.query(`
      CREATE TABLE drover.audit_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        type varchar(64) NOT NULL, run_id uuid, step_id uuid, actor varchar(160) NOT NULL, data jsonb
      )`);
    await q.query(`INSERT INTO drover.audit_events OVERRIDING SYSTEM VALUE SELECT id, at, type, run_id, step_id, actor, data FROM drover.audit_events_partitioned ORDER BY id`);
    await q.query(`SELECT setval(pg_get_serial_sequence('drover.audit_events', 'id'), GREATEST((SELECT max(id) FROM drover.audit_events_partitioned), 0) + 1, false)`);
    await q.query(`DROP TABLE drover.audit_events_partitioned CASCADE`);
    await q.query(`DROP FUNCTION drover.ensure_audit_partition(date)`);
    await q.query(`CREATE INDEX audit_events_run_idx ON drover.audit_events (run_id, id)`);
    await q.query(`CREATE INDEX audit_events_queue_idx ON drover.audit_events (id) WHERE run_id IS NULL`);
    await q.query(`CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON drover.audit_events FOR EACH ROW EXECUTE FUNCTION drover.audit_events_immutable()`);
    await q.query(`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON drover.audit_events FOR EACH STATEMENT EXECUTE FUNCTION drover.audit_events_immutable()`);
    await q.query(`CREATE TRIGGER audit_events_notify AFTER INSERT ON drover.audit_events FOR EACH STATEMENT EXECUTE FUNCTION drover.audit_events_notify()`);
    await q.query(`DROP INDEX drover.workers_stopped_idx`);
    await q.query(`DROP INDEX drover.runs_retention_idx`);
    await q.query(`DROP TABLE drover.step_logs`);
    await q.query(`DROP TABLE drover.schedules`);
  }
}
