import { Cron } from 'croner';
import { DroverError } from '../errors';

/** What a tick does while the schedule's previous run is still open. */
export const OVERLAP_POLICIES = ['skip', 'allow', 'cancel_previous'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];
/** Which missed ticks fire after downtime. */
export const CATCH_UP_POLICIES = ['none', 'latest', 'all'] as const;
export type CatchUpPolicy = (typeof CATCH_UP_POLICIES)[number];
/** The most missed ticks `catchUp: 'all'` fires (the latest ones). */
export const MAX_CATCH_UP = 100;

/** A schedule as a module exports it or `POST /api/schedules` takes it (CONTRACT §8). */
export interface ScheduleDefinition {
  /** Unique; `[a-z0-9][a-z0-9._-]{0,63}`. */
  name: string;
  /** The workflow each tick starts a run of. */
  workflow: string;
  /** Five fields (minute hour day month weekday), or six with seconds first. */
  cron: string;
  /** IANA time zone the cron fields are read in. Default `UTC`. */
  timezone?: string;
  /** The input of every run (a JSON object). Default `{}`. */
  input?: Record<string, unknown>;
  /** The workspace of its runs. Default `default`. */
  workspace?: string;
  /** Default `skip`: no run while the previous one is open. */
  overlap?: OverlapPolicy;
  /** Default `latest`: after downtime, one run for the most recent missed tick. */
  catchUp?: CatchUpPolicy;
}

/** A definition with every default applied. */
export type ResolvedSchedule = Required<ScheduleDefinition>;

/** A schedule definition is invalid (bad cron, time zone, policy, name): `invalid_schedule` (422). */
export class InvalidScheduleError extends DroverError {
  constructor(message: string) {
    super('invalid_schedule', message);
  }
}

/** The name is taken by another schedule: `already_exists` (409). */
export class ScheduleExistsError extends DroverError {
  constructor(name: string) {
    super('already_exists', `a schedule named "${name}" already exists (delete it first, or pick another name)`);
  }
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const WORKSPACE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEYS = new Set(['name', 'workflow', 'cron', 'timezone', 'input', 'workspace', 'overlap', 'catchUp']);

/** Whether `zone` is an IANA time zone this runtime knows. */
function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The croner pattern of a validated cron expression and time zone (paused: it never fires by itself). */
export function cronOf(cron: string, timezone: string): Cron {
  return new Cron(cron, { timezone, paused: true });
}

/**
 * Validates a definition and applies its defaults; throws `InvalidScheduleError`
 * with a message naming the schedule and the field.
 */
export function resolveSchedule(raw: unknown): ResolvedSchedule {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InvalidScheduleError('a schedule must be an object {name, workflow, cron, ...}');
  const d = raw as Record<string, unknown>;
  const label = typeof d.name === 'string' ? `schedule "${d.name}"` : 'schedule';
  const fail = (message: string): never => { throw new InvalidScheduleError(`${label}: ${message}`); };
  for (const key of Object.keys(d)) if (!KEYS.has(key)) fail(`unknown field "${key}" (allowed: ${[...KEYS].join(', ')})`);
  if (typeof d.name !== 'string' || !NAME.test(d.name)) fail('name must match [a-z0-9][a-z0-9._-]{0,63}');
  if (typeof d.workflow !== 'string' || !NAME.test(d.workflow)) fail('workflow must be a workflow name ([a-z0-9][a-z0-9._-]{0,63})');
  if (typeof d.cron !== 'string' || d.cron.length > 128) fail('cron must be a string of five fields (minute hour day month weekday) or six with seconds first');
  const fields = (d.cron as string).trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) fail(`cron "${d.cron}" has ${fields.length} fields; it needs five (minute hour day month weekday) or six with seconds first`);
  const timezone = d.timezone === undefined ? 'UTC' : d.timezone;
  if (typeof timezone !== 'string' || timezone.length > 64 || !isTimeZone(timezone)) fail(`timezone ${JSON.stringify(timezone)} is not an IANA time zone (such as UTC or Europe/Berlin)`);
  if (d.input !== undefined && (typeof d.input !== 'object' || d.input === null || Array.isArray(d.input))) fail('input must be a JSON object');
  if (d.workspace !== undefined && (typeof d.workspace !== 'string' || !WORKSPACE.test(d.workspace))) fail('workspace must be 1 to 64 letters, digits or ._- starting with a letter or digit');
  if (d.overlap !== undefined && !(OVERLAP_POLICIES as readonly unknown[]).includes(d.overlap)) fail(`overlap must be one of ${OVERLAP_POLICIES.join(', ')}`);
  if (d.catchUp !== undefined && !(CATCH_UP_POLICIES as readonly unknown[]).includes(d.catchUp)) fail(`catchUp must be one of ${CATCH_UP_POLICIES.join(', ')}`);
  let next: Date | null = null;
  try {
    next = cronOf(d.cron as string, timezone as string).nextRun();
  } catch (error) {
    fail(`cron "${d.cron}" is not valid: ${(error as Error).message.replace(/^CronPattern: /, '')}`);
  }
  if (!next) fail(`cron "${d.cron}" never fires`);
  return {
    name: d.name as string, workflow: d.workflow as string, cron: fields.join(' '), timezone: timezone as string,
    input: (d.input as Record<string, unknown>) ?? {}, workspace: (d.workspace as string) ?? 'default',
    overlap: (d.overlap as OverlapPolicy) ?? 'skip', catchUp: (d.catchUp as CatchUpPolicy) ?? 'latest',
  };
}

/** The first fire time strictly after `after`, or null when the pattern never fires again. */
export function nextFireAfter(cron: string, timezone: string, after: Date): Date | null {
  return cronOf(cron, timezone).nextRun(after);
}

/** What a tick fires of the fire times that are due. */
export interface DueTicks {
  /** The fire times to make runs for, oldest first. */
  fire: Date[];
  /** How many of `fire` (the first ones) were missed ticks, fired late by the catch-up policy. */
  late: number;
  /** Missed ticks (older than the grace) the catch-up policy leaves out. */
  skipped: Date[];
}

/**
 * The fire times from `from` (the schedule's next fire time) up to `now`, at
 * most the latest `MAX_CATCH_UP`. A tick at most `graceMs` late is current: it
 * fires whatever the policy (a busy moment is not downtime). Older ones were
 * missed (no process ticked): `all` fires them, `latest` only the most recent
 * of them, `none` none of them.
 */
export function dueFireTimes(cron: string, timezone: string, from: Date, now: Date, policy: CatchUpPolicy, graceMs: number): DueTicks {
  if (from.getTime() > now.getTime()) return { fire: [], late: 0, skipped: [] };
  const pattern = cronOf(cron, timezone);
  // Walking back from now finds the latest ones without stepping through a long outage tick by tick.
  const due = pattern.previousRuns(MAX_CATCH_UP, new Date(now.getTime() + 1)).filter((t) => t.getTime() >= from.getTime()).reverse();
  if (due.length === 0) due.push(from);
  const current = due.filter((t) => now.getTime() - t.getTime() <= graceMs);
  const missed = due.filter((t) => now.getTime() - t.getTime() > graceMs);
  if (policy === 'all' || missed.length === 0) return { fire: due, late: missed.length, skipped: [] };
  if (policy === 'latest') return { fire: [missed[missed.length - 1], ...current], late: 1, skipped: missed.slice(0, -1) };
  return { fire: current, late: 0, skipped: missed };
}
