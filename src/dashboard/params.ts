import { z } from 'zod';
import { invalidRequest } from '../errors';
import { formatIssue, WORKSPACE_NAME } from '../runs/schemas';
import { RUN_STATUSES } from '../states';
import { STEP_NAME, WORKFLOW_NAME } from '../workflows/definitions';

/** The "created since" choices of the runs list, in milliseconds. */
export const SINCE_CHOICES = { '15m': 15 * 60_000, '1h': 3_600_000, '6h': 6 * 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 } as const;
/** One of the "created since" choices. */
export type Since = keyof typeof SINCE_CHOICES;

// A form submits empty fields as `name=`: they mean "no filter".
const optional = <T extends z.ZodTypeAny>(schema: T) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

/** The query of the runs list (`/`). */
export const runsPageSchema = z.strictObject({
  status: optional(z.enum(RUN_STATUSES, { error: `must be one of ${RUN_STATUSES.join(', ')}` })),
  workflow: optional(z.string().max(64).regex(WORKFLOW_NAME, 'must be a workflow name')),
  workspace: optional(z.string().regex(WORKSPACE_NAME, 'must be a workspace name')),
  since: optional(z.enum(Object.keys(SINCE_CHOICES) as [Since, ...Since[]], { error: `must be one of ${Object.keys(SINCE_CHOICES).join(', ')}` })),
  q: optional(z.string().trim().max(255, 'is longer than 255 characters')),
  cursor: optional(z.string().max(200)),
});
/** The parsed query of the runs list. */
export type RunsPageQuery = z.infer<typeof runsPageSchema>;

/** The query of a run page (`/runs/:id`). */
export const runPageSchema = z.strictObject({
  // A step name, or a map element's (`<map>[<index>]`).
  step: optional(z.string().regex(new RegExp(`${STEP_NAME.source.slice(0, -1)}(\\[\\d{1,5}\\])?$`), 'must be a step name')),
});

/** The query of the event stream (`/events`). */
export const eventsSchema = z.strictObject({
  run: optional(z.uuid({ error: 'must be a run id' })),
});

/** Parses a page's query, throwing `invalid_request` (a 400 page) naming the bad field. */
export function parseQuery<T extends z.ZodTypeAny>(schema: T, query: unknown): z.infer<T> {
  const parsed = schema.safeParse(query);
  if (!parsed.success) throw invalidRequest(formatIssue(parsed.error, 'query'));
  return parsed.data;
}
