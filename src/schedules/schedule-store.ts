import type { Sql } from '../db/sql';
import { appendScheduleEvents } from '../audit/audit';
import { notFound, unknownWorkflow } from '../errors';
import { InputValidator } from '../workflows/input-schema';
import { isoTime } from '../json';
import type { WorkflowRegistry } from '../workflows/workflow-registry';
import {
  InvalidScheduleError, nextFireAfter, resolveSchedule, ScheduleExistsError, type CatchUpPolicy, type OverlapPolicy, type ResolvedSchedule,
} from './schedule-definition';

/** A schedule as the API shows it. */
export interface ScheduleView {
  name: string;
  workflow: string;
  cron: string;
  timezone: string;
  input: Record<string, unknown>;
  workspace: string;
  overlap: OverlapPolicy;
  catchUp: CatchUpPolicy;
  /** `api` (made by `POST /api/schedules` or the CLI) or `module` (a worker's module exports it). */
  source: 'api' | 'module';
  paused: boolean;
  /** When the next tick fires (null while paused: resuming computes it from then). */
  nextFireAt: string | null;
  /** The tick time the last run was made for, and when it was made. */
  lastFireAt: string | null;
  lastFiredAt: string | null;
  lastRunId: string | null;
  /** The ids of its latest runs (up to 10), newest first. */
  recentRunIds: string[];
  /** How late the last tick fired, in seconds. */
  lastLagSeconds: number | null;
  createdAt: string;
  updatedAt: string;
}

const COLUMNS = `name, workflow, cron, timezone, input, workspace, overlap, catch_up, source, paused, next_fire_at, last_fire_at, last_fired_at,
  last_run_id, recent_run_ids, last_lag_ms, created_at, updated_at`;

function toView(row: any): ScheduleView {
  return {
    name: row.name, workflow: row.workflow, cron: row.cron, timezone: row.timezone, input: row.input ?? {}, workspace: row.workspace,
    overlap: row.overlap, catchUp: row.catch_up, source: row.source, paused: row.paused,
    nextFireAt: row.paused ? null : isoTime(row.next_fire_at), lastFireAt: isoTime(row.last_fire_at), lastFiredAt: isoTime(row.last_fired_at),
    lastRunId: row.last_run_id ?? null, recentRunIds: row.recent_run_ids ?? [], lastLagSeconds: row.last_lag_ms === null ? null : row.last_lag_ms / 1000,
    createdAt: isoTime(row.created_at)!, updatedAt: isoTime(row.updated_at)!,
  };
}

/** The first fire time after now, or an error naming a pattern that never fires again. */
function firstFire(s: ResolvedSchedule, after = new Date()): Date {
  const next = nextFireAfter(s.cron, s.timezone, after);
  if (!next) throw new InvalidScheduleError(`schedule "${s.name}": cron "${s.cron}" never fires again`);
  return next;
}

/**
 * The schedules table (`drover.schedules`): create, read, list, delete,
 * pause and resume, each change audited (an event without a run). Workspace
 * limits: a key limited to workspaces sees only their schedules.
 */
export class ScheduleStore {
  private readonly inputs = new InputValidator();

  constructor(private readonly sql: Sql, private readonly workflows: WorkflowRegistry) {}

  /** Creates a schedule; `already_exists` for a taken name, `invalid_schedule` or `unknown_workflow` for a bad one, `invalid_input` for an input the workflow's schema refuses. */
  async create(raw: unknown, actor: string): Promise<ScheduleView> {
    const s = resolveSchedule(raw);
    const workflow = (await this.workflows.resolve([s.workflow])).get(s.workflow);
    if (!workflow) throw unknownWorkflow(s.workflow);
    // Its ticks would fail one by one (a warning each, no run): refuse it now, as a run would be.
    const refused = this.inputs.refusal(workflow, s.input);
    if (refused) throw refused;
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query(`
        INSERT INTO drover.schedules (name, workflow, cron, timezone, input, workspace, overlap, catch_up, source, next_fire_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'api', $9) ON CONFLICT (name) DO NOTHING RETURNING ${COLUMNS}`,
      [s.name, s.workflow, s.cron, s.timezone, JSON.stringify(s.input), s.workspace, s.overlap, s.catchUp, firstFire(s)]);
      if (!rows[0]) throw new ScheduleExistsError(s.name);
      await appendScheduleEvents(tx, actor, [{ type: 'schedule.created', data: { ...s } }]);
      return toView(rows[0]);
    });
  }

  /**
   * A module's schedules (a worker at start-up): each is created, or updated
   * when its definition changed (its paused state is kept; its next fire time
   * is recomputed only when the cron or time zone changed).
   */
  async syncModuleSchedules(definitions: ResolvedSchedule[], actor: string): Promise<void> {
    for (const s of definitions) {
      await this.sql.transaction(async (tx) => {
        const [old] = await tx.query(`SELECT ${COLUMNS} FROM drover.schedules WHERE name = $1 FOR UPDATE`, [s.name]);
        const same = old && old.workflow === s.workflow && old.cron === s.cron && old.timezone === s.timezone && old.workspace === s.workspace
          && old.overlap === s.overlap && old.catch_up === s.catchUp && JSON.stringify(old.input) === JSON.stringify(s.input) && old.source === 'module';
        if (same) return;
        const keepNext = old && old.cron === s.cron && old.timezone === s.timezone;
        await tx.query(`
          INSERT INTO drover.schedules (name, workflow, cron, timezone, input, workspace, overlap, catch_up, source, next_fire_at)
          VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'module', $9)
          ON CONFLICT (name) DO UPDATE SET workflow = EXCLUDED.workflow, cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, input = EXCLUDED.input,
            workspace = EXCLUDED.workspace, overlap = EXCLUDED.overlap, catch_up = EXCLUDED.catch_up, source = 'module',
            next_fire_at = CASE WHEN $10 THEN drover.schedules.next_fire_at ELSE EXCLUDED.next_fire_at END, updated_at = now()`,
        [s.name, s.workflow, s.cron, s.timezone, JSON.stringify(s.input), s.workspace, s.overlap, s.catchUp, firstFire(s), Boolean(keepNext)]);
        await appendScheduleEvents(tx, actor, [{ type: old ? 'schedule.updated' : 'schedule.created', data: { ...s, source: 'module' } }]);
      });
    }
  }

  /** Every schedule (of `workspaces` when limited), by name, at most 1 000. */
  async list(workspaces: readonly string[] | null = null): Promise<ScheduleView[]> {
    const rows = await this.sql.query(`
      SELECT ${COLUMNS} FROM drover.schedules WHERE $1::text[] IS NULL OR workspace = ANY ($1::text[]) ORDER BY name LIMIT 1000`,
    [workspaces ? [...workspaces] : null]);
    return rows.map(toView);
  }

  /** One schedule; `not_found` also when a workspace limit hides it. */
  async get(name: string, workspaces: readonly string[] | null = null): Promise<ScheduleView> {
    const [row] = await this.sql.query(`SELECT ${COLUMNS} FROM drover.schedules WHERE name = $1`, [String(name)]);
    if (!row || (workspaces && !workspaces.includes(row.workspace))) throw notFound(`schedule "${name}"`);
    return toView(row);
  }

  /** Deletes a schedule (its runs stay); returns what it was. */
  async delete(name: string, actor: string): Promise<ScheduleView> {
    return this.sql.transaction(async (tx) => {
      const [row] = await tx.query(`DELETE FROM drover.schedules WHERE name = $1 RETURNING ${COLUMNS}`, [String(name)]);
      if (!row) throw notFound(`schedule "${name}"`);
      await appendScheduleEvents(tx, actor, [{ type: 'schedule.deleted', data: { name: row.name } }]);
      return toView(row);
    });
  }

  /**
   * Pauses (no tick fires) or resumes a schedule. Resuming starts from now:
   * the ticks missed while paused are not caught up.
   */
  async setPaused(name: string, paused: boolean, actor: string): Promise<ScheduleView> {
    return this.sql.transaction(async (tx) => {
      const [old] = await tx.query(`SELECT ${COLUMNS} FROM drover.schedules WHERE name = $1 FOR UPDATE`, [String(name)]);
      if (!old) throw notFound(`schedule "${name}"`);
      if (old.paused === paused) return toView(old);
      const next = paused ? old.next_fire_at : firstFire({ ...old, catchUp: old.catch_up } as ResolvedSchedule);
      const [row] = await tx.query(`
        UPDATE drover.schedules SET paused = $2, next_fire_at = $3, updated_at = now() WHERE name = $1 RETURNING ${COLUMNS}`, [old.name, paused, next]);
      await appendScheduleEvents(tx, actor, [{ type: paused ? 'schedule.paused' : 'schedule.resumed', data: { name: old.name } }]);
      return toView(row);
    });
  }

  /** The lag of each schedule's last tick, for the `drover_schedule_lag_seconds` gauge. */
  async lags(): Promise<Array<{ schedule: string; seconds: number }>> {
    const rows = await this.sql.query(`SELECT name, last_lag_ms FROM drover.schedules WHERE last_lag_ms IS NOT NULL ORDER BY name LIMIT 1000`);
    return rows.map((r) => ({ schedule: r.name, seconds: r.last_lag_ms / 1000 }));
  }
}
