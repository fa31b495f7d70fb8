import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The first schema: runs, steps, audit events (append-only), workers, workflows, API keys. */
export class InitialSchema1763900000000 implements MigrationInterface {
  name = 'InitialSchema1763900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS drover`);
    await q.query(`
      CREATE TABLE drover.runs (
        id uuid PRIMARY KEY,
        workflow varchar(64) NOT NULL,
        workflow_version varchar(64) NOT NULL,
        definition jsonb NOT NULL,
        status varchar(16) NOT NULL CONSTRAINT runs_status_check
          CHECK (status IN ('pending','running','succeeded','failed','cancelled')),
        input jsonb,
        output jsonb,
        error jsonb,
        workspace varchar(64) NOT NULL DEFAULT 'default',
        priority integer NOT NULL DEFAULT 0 CHECK (priority >= 0),
        delay_ms integer NOT NULL DEFAULT 0 CHECK (delay_ms >= 0),
        idempotency_key varchar(255),
        generation integer NOT NULL DEFAULT 0,
        open_steps integer NOT NULL CHECK (open_steps >= 0),
        failed_steps integer NOT NULL DEFAULT 0 CHECK (failed_steps >= 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      )`);
    await q.query(`CREATE UNIQUE INDEX runs_idempotency_key ON drover.runs (workspace, idempotency_key) WHERE idempotency_key IS NOT NULL`);
    await q.query(`CREATE INDEX runs_created_idx ON drover.runs (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX runs_status_created_idx ON drover.runs (status, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX runs_workflow_created_idx ON drover.runs (workflow, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX runs_workspace_created_idx ON drover.runs (workspace, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX runs_open_idx ON drover.runs (created_at) WHERE status IN ('pending','running')`);

    await q.query(`
      CREATE TABLE drover.steps (
        id uuid PRIMARY KEY,
        run_id uuid NOT NULL REFERENCES drover.runs(id) ON DELETE CASCADE,
        name varchar(64) NOT NULL,
        processor varchar(128) NOT NULL,
        queue varchar(64) NOT NULL,
        status varchar(16) NOT NULL CONSTRAINT steps_status_check
          CHECK (status IN ('pending','queued','running','succeeded','failed','cancelled','skipped')),
        depends_on text[] NOT NULL DEFAULT '{}',
        deps_remaining integer NOT NULL CHECK (deps_remaining >= 0),
        attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
        max_attempts integer NOT NULL CHECK (max_attempts >= 1),
        generation integer NOT NULL DEFAULT 0,
        options jsonb NOT NULL,
        output jsonb,
        error jsonb,
        lease uuid,
        worker_id varchar(64),
        created_at timestamptz NOT NULL DEFAULT now(),
        queued_at timestamptz,
        started_at timestamptz,
        finished_at timestamptz,
        CONSTRAINT steps_run_name_key UNIQUE (run_id, name)
      )`);
    // The reconciler scans only the live steps; a partial index keeps that cheap
    // however many finished steps the table holds.
    await q.query(`CREATE INDEX steps_live_idx ON drover.steps (status, queued_at) WHERE status IN ('queued','running')`);

    await q.query(`
      CREATE TABLE drover.audit_events (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        type varchar(64) NOT NULL,
        run_id uuid NOT NULL,
        step_id uuid,
        actor varchar(160) NOT NULL,
        data jsonb
      )`);
    await q.query(`CREATE INDEX audit_events_run_idx ON drover.audit_events (run_id, id)`);
    await q.query(`
      CREATE FUNCTION drover.audit_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'drover.audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON drover.audit_events
      FOR EACH ROW EXECUTE FUNCTION drover.audit_events_immutable()`);
    await q.query(`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON drover.audit_events
      FOR EACH STATEMENT EXECUTE FUNCTION drover.audit_events_immutable()`);

    await q.query(`
      CREATE TABLE drover.workers (
        id varchar(64) PRIMARY KEY,
        hostname varchar(255) NOT NULL,
        pid integer NOT NULL,
        queues text[] NOT NULL,
        concurrency integer NOT NULL CHECK (concurrency >= 1),
        version varchar(32) NOT NULL,
        status varchar(16) NOT NULL CONSTRAINT workers_status_check CHECK (status IN ('active','stopped','gone')),
        started_at timestamptz NOT NULL DEFAULT now(),
        last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
        stopped_at timestamptz
      )`);
    await q.query(`CREATE INDEX workers_status_heartbeat_idx ON drover.workers (status, last_heartbeat_at)`);

    await q.query(`
      CREATE TABLE drover.workflows (
        name varchar(64) NOT NULL,
        version varchar(64) NOT NULL,
        definition jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        registered_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (name, version)
      )`);
    await q.query(`CREATE INDEX workflows_name_registered_idx ON drover.workflows (name, registered_at DESC)`);

    await q.query(`
      CREATE TABLE drover.api_keys (
        id uuid PRIMARY KEY,
        name varchar(128) NOT NULL,
        prefix varchar(32) NOT NULL UNIQUE,
        hash varchar(64) NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz,
        revoked_at timestamptz
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA drover CASCADE`);
  }
}
