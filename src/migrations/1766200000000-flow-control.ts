import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Flow control (CONTRACT §8): the admission rows of concurrency keys, the
 * start records of rate limits, and the functions the start fence and the
 * step views call.
 *
 * A `flow_entries` row says a run (kind `run`) or a step generation (kind
 * `step`) waits on, or holds a place under, a concurrency key. A place is
 * counted only while its subject is open (run pending or running; step of
 * that generation pending, queued or running), so the transition that ends a
 * step or a run releases its place in the same transaction: nothing a crash
 * can leak. `flow_starts` records the starts of rate-limited steps.
 */
export class FlowControl1766200000000 implements MigrationInterface {
  name = 'FlowControl1766200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE drover.flow_entries (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        subject uuid NOT NULL,
        generation integer NOT NULL DEFAULT 0,
        kind varchar(8) NOT NULL CONSTRAINT flow_entries_kind_check CHECK (kind IN ('run','step')),
        run_id uuid NOT NULL,
        workflow varchar(64) NOT NULL,
        scope varchar(200) NOT NULL,
        key varchar(300) NOT NULL,
        lim integer NOT NULL CHECK (lim >= 1),
        state varchar(8) NOT NULL CONSTRAINT flow_entries_state_check CHECK (state IN ('waiting','holding','evicted')),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (subject, generation)
      )`);
    // Waiters oldest first per key; holders per key.
    await q.query(`CREATE INDEX flow_entries_key_idx ON drover.flow_entries (scope, key, state, seq)`);
    await q.query(`CREATE INDEX flow_entries_run_idx ON drover.flow_entries (run_id)`);
    await q.query(`
      CREATE TABLE drover.flow_starts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        scope varchar(200) NOT NULL,
        key varchar(300) NOT NULL,
        at timestamptz NOT NULL,
        period_ms integer NOT NULL,
        step_id uuid NOT NULL,
        attempt integer NOT NULL
      )`);
    await q.query(`CREATE INDEX flow_starts_key_idx ON drover.flow_starts (scope, key, at)`);
    await q.query(`CREATE INDEX flow_starts_step_idx ON drover.flow_starts (step_id, attempt)`);
    // When the next start put off by a full window of a key may try again (spaces a backlog's wake-ups).
    await q.query(`
      CREATE TABLE drover.flow_rate_wakes (
        scope varchar(200) NOT NULL,
        key varchar(300) NOT NULL,
        next_at timestamptz NOT NULL,
        PRIMARY KEY (scope, key)
      )`);
    await q.query(`
      CREATE FUNCTION drover.flow_entry_open(p_kind text, p_subject uuid, p_generation integer) RETURNS boolean
      LANGUAGE sql STABLE AS $$
        SELECT CASE WHEN p_kind = 'run'
          THEN EXISTS (SELECT 1 FROM drover.runs r WHERE r.id = p_subject AND r.status IN ('pending','running'))
          ELSE EXISTS (SELECT 1 FROM drover.steps s WHERE s.id = p_subject AND s.generation = p_generation
                                                     AND s.status IN ('pending','queued','running')) END
      $$`);
    // The start fence: a step under flow control starts only while it (and its run) hold a place,
    // and, when rate-limited, only through the rate limiter (which records the start first).
    await q.query(`
      CREATE FUNCTION drover.flow_may_start(p_step uuid, p_run uuid, p_generation integer, p_attempt integer, p_flow jsonb) RETURNS boolean
      LANGUAGE sql STABLE AS $$
        SELECT (NOT (p_flow ? 'run') OR EXISTS (SELECT 1 FROM drover.flow_entries e
                                                 WHERE e.subject = p_run AND e.generation = 0 AND e.state = 'holding'))
           AND (NOT (p_flow ? 'step') OR EXISTS (SELECT 1 FROM drover.flow_entries e
                                                  WHERE e.subject = p_step AND e.generation = p_generation AND e.state = 'holding'))
           AND (NOT (p_flow ? 'stepRate' OR p_flow ? 'runRate')
                OR EXISTS (SELECT 1 FROM drover.flow_starts f WHERE f.step_id = p_step AND f.attempt = p_attempt + 1))
      $$`);
    // Why a queued step waits on a concurrency key (its own, or its run's): "concurrency key tenant=a (2/2 running)".
    await q.query(`
      CREATE FUNCTION drover.flow_waiting_for(p_step uuid, p_run uuid) RETURNS text
      LANGUAGE sql STABLE AS $$
        SELECT 'concurrency key ' || e.key || ' (' ||
               (SELECT count(*) FROM drover.flow_entries h
                 WHERE h.scope = e.scope AND h.key = e.key AND h.state = 'holding'
                   AND drover.flow_entry_open(h.kind, h.subject, h.generation)) || '/' || e.lim ||
               CASE WHEN e.kind = 'run' THEN ' runs' ELSE ' steps' END || ' running)'
          FROM drover.flow_entries e
         WHERE e.subject IN (p_step, p_run) AND e.state = 'waiting'
         ORDER BY e.kind LIMIT 1
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION drover.flow_waiting_for(uuid, uuid)`);
    await q.query(`DROP FUNCTION drover.flow_may_start(uuid, uuid, integer, integer, jsonb)`);
    await q.query(`DROP FUNCTION drover.flow_entry_open(text, uuid, integer)`);
    await q.query(`DROP TABLE drover.flow_rate_wakes`);
    await q.query(`DROP TABLE drover.flow_starts`);
    await q.query(`DROP TABLE drover.flow_entries`);
  }
}
