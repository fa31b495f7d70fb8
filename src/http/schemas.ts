import { z } from 'zod';
import { invalidRequest } from '../errors';

/** Most runs one `POST /api/runs/batch` may create. */
export const MAX_BATCH_RUNS = 1000;

/** `POST /api/runs/batch` body; each run is validated on its own by the run service. */
export const batchBodySchema = z.strictObject({
  runs: z.array(z.unknown()).max(MAX_BATCH_RUNS, `must hold at most ${MAX_BATCH_RUNS} runs`),
});

/** `POST /api/runs/:id/signals/:signal` body: `{ payload }` (any JSON; absent: null). */
export const signalBodySchema = z.strictObject({ payload: z.unknown().optional() });

/** A JSON object body (the run service validates its fields). */
export const objectBodySchema = z.record(z.string(), z.unknown());

/** Parses `value` with `schema` or throws 400 `invalid_request` naming the first issue. */
export function parseOr400<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = [what, ...issue.path.map(String)].join('.');
    throw invalidRequest(`${where}: ${issue.message}`, {
      issues: parsed.error.issues.slice(0, 5).map((i) => ({ path: i.path, message: i.message })),
    });
  }
  return parsed.data;
}
