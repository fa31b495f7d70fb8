import { z } from 'zod';
import { MAX_PRIORITY, WORKFLOW_NAME } from '../workflows/definitions';
import { DAY_MS } from '../json';
import { RUN_STATUSES } from '../states';

/** Workspace names. */
export const WORKSPACE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A run creation request (HTTP body, in-process call, CLI). */
export const createRunSchema = z.strictObject({
  workflow: z.string().min(1).max(64).regex(WORKFLOW_NAME, 'must be a workflow name ([a-z0-9][a-z0-9._-]{0,63})'),
  input: z.unknown().optional(),
  idempotencyKey: z.string().min(1).max(255).regex(/^[\x20-\x7e]+$/, 'must be printable ASCII').optional(),
  priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
  delayMs: z.number().int().min(0).max(30 * DAY_MS).optional(),
  /** When the run's first steps may start: an ISO 8601 time with a time zone (or a Date in-process); a time past means now. */
  runAt: z.union([z.iso.datetime({ offset: true }), z.date()]).optional(),
  workspace: z.string().regex(WORKSPACE_NAME, 'must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}').optional(),
}).refine((r) => r.delayMs === undefined || r.runAt === undefined, { message: 'give delayMs or runAt, not both', path: ['runAt'] });

/** `GET /api/runs` query. */
export const listRunsSchema = z.strictObject({
  status: z.enum(RUN_STATUSES).optional(),
  workflow: z.string().max(64).regex(WORKFLOW_NAME, 'must be a workflow name').optional(),
  workspace: z.string().regex(WORKSPACE_NAME, 'must be a workspace name').optional(),
  limit: z.coerce.number().int().min(1).max(100).optional(),
  cursor: z.string().max(200).optional(),
});

/** The first issue of a zod error as one line: `field: message` (`whole: message` when it is about the whole value). */
export function formatIssue(error: z.ZodError, whole: 'body' | 'query' = 'body'): string {
  const issue = error.issues[0];
  const where = issue.path.length ? issue.path.join('.') : whole;
  return `${where}: ${issue.message}`;
}
