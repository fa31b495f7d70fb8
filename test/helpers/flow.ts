import type { Sql } from '../../src/db/sql';

/** One holder's time under a key, from the audit trail: first start to final outcome. */
export interface Interval {
  key: string;
  id: string;
  start: number;
  end: number;
}

/**
 * The intervals each step (of `stepName`) held its place, from the audit
 * trail: from its first `step.started` to its `step.succeeded`, `step.failed`
 * or `step.cancelled` (an attempt lost with a killed worker is part of it:
 * the place is held until the step ends). Keyed by `keyOf(run input)`.
 */
export async function stepIntervals(sql: Sql, workflow: string, stepName: string, keyOf: (input: any) => string): Promise<Interval[]> {
  const rows = await sql.query(`
    SELECT s.id, r.input, (extract(epoch FROM min(a.at) FILTER (WHERE a.type = 'step.started')) * 1e6)::bigint::text AS started,
           (extract(epoch FROM max(a.at) FILTER (WHERE a.type IN ('step.succeeded', 'step.failed', 'step.cancelled'))) * 1e6)::bigint::text AS ended
      FROM drover.steps s JOIN drover.runs r ON r.id = s.run_id JOIN drover.audit_events a ON a.step_id = s.id
     WHERE r.workflow = $1 AND s.name = $2 GROUP BY s.id, r.input`, [workflow, stepName]);
  return rows.filter((r) => r.started).map((r) => ({
    key: keyOf(r.input), id: r.id, start: Number(r.started), end: r.ended ? Number(r.ended) : Number.MAX_SAFE_INTEGER,
  }));
}

/** The intervals each run was running: `run.started` to its final event. */
export async function runIntervals(sql: Sql, workflow: string, keyOf: (input: any) => string): Promise<Interval[]> {
  const rows = await sql.query(`
    SELECT r.id, r.input, (extract(epoch FROM min(a.at) FILTER (WHERE a.type = 'run.started')) * 1e6)::bigint::text AS started,
           (extract(epoch FROM max(a.at) FILTER (WHERE a.type IN ('run.succeeded', 'run.failed', 'run.cancelled'))) * 1e6)::bigint::text AS ended
      FROM drover.runs r JOIN drover.audit_events a ON a.run_id = r.id
     WHERE r.workflow = $1 GROUP BY r.id, r.input`, [workflow]);
  return rows.filter((r) => r.started).map((r) => ({
    key: keyOf(r.input), id: r.id, start: Number(r.started), end: r.ended ? Number(r.ended) : Number.MAX_SAFE_INTEGER,
  }));
}

/** The most intervals of one key open at the same instant, per key (an end at the same instant as a start comes first). */
export function maxOverlap(intervals: Interval[]): Map<string, number> {
  const byKey = new Map<string, Array<[number, number]>>();
  for (const i of intervals) {
    const list = byKey.get(i.key) ?? [];
    list.push([i.start, 1], [i.end, -1]);
    byKey.set(i.key, list);
  }
  const result = new Map<string, number>();
  for (const [key, points] of byKey) {
    points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let open = 0;
    let max = 0;
    for (const [, d] of points) {
      open += d;
      max = Math.max(max, open);
    }
    result.set(key, max);
  }
  return result;
}
