/**
 * What an API key may do. Scopes are ordered: each one can do everything the
 * one before it can.
 *
 * - `read`: reads runs, audit trails, workflows, workers, Bull Board (when not
 *   limited to workspaces) and, with `DROVER_METRICS_AUTH=on`, `/metrics`.
 * - `producer`: also creates, cancels and resumes (retries) runs.
 * - `admin`: also Bull Board's mutating requests (in `readwrite` mode). Keys
 *   themselves are managed with the `drover keys` command, which needs the
 *   database, not a key.
 */
export const SCOPES = ['read', 'producer', 'admin'] as const;

/** One of `SCOPES`. */
export type Scope = (typeof SCOPES)[number];

/** Whether `value` names a scope. */
export function isScope(value: unknown): value is Scope {
  return typeof value === 'string' && (SCOPES as readonly string[]).includes(value);
}

/** Whether a key of scope `held` may do what needs scope `needed`. */
export function scopeAllows(held: Scope, needed: Scope): boolean {
  return SCOPES.indexOf(held) >= SCOPES.indexOf(needed);
}

const DURATION_UNITS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * Parses a key lifetime such as `30d`, `12h`, `90m` or `2w` into milliseconds.
 * @returns undefined when the text is not a positive whole number followed by m, h, d or w.
 */
export function parseLifetime(text: string): number | undefined {
  const match = /^([1-9][0-9]{0,5})([mhdw])$/.exec(text.trim());
  return match ? Number(match[1]) * DURATION_UNITS[match[2]] : undefined;
}
