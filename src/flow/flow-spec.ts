import { z } from 'zod';
import { DAY_MS } from '../json';

/** How a run over its workflow's concurrency limit is handled. */
export type ConcurrencyStrategy = 'queue' | 'cancel_newest' | 'cancel_in_progress';

/** Concurrency of a workflow's runs per key value (CONTRACT §8). */
export interface WorkflowConcurrency {
  /** `input.<path>` (a path into the run input) or a constant. */
  key: string;
  /** Runs with the same key value running at once, 1..10000. */
  limit: number;
  /** `queue` (default): the others wait, oldest first; `cancel_newest`: a new run over the limit is cancelled; `cancel_in_progress`: the oldest running one is cancelled. */
  strategy?: ConcurrencyStrategy;
}

/** Concurrency of a step per key value, across all runs and workers. */
export interface StepConcurrency {
  /** `input.<path>` (a path into the run input) or a constant. */
  key: string;
  /** Steps with the same key value running at once, 1..10000. */
  limit: number;
}

/** At most `limit` starts per `periodMs` per key value. */
export interface RateLimit {
  /** `input.<path>` (a path into the run input) or a constant. */
  key: string;
  /** Starts per period, 1..100000. */
  limit: number;
  /** The period in ms, 1..86400000 (a day). */
  periodMs: number;
}

const keySchema = z.string({ error: 'must be a string: input.<path> or a constant' })
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .refine((k) => !k.startsWith('input.') || k.slice(6).split('.').every((part) => part.length > 0), {
    message: 'input.<path> needs a path of dotted names with no empty part, like input.tenant',
  })
  .refine((k) => k !== 'input', { message: '"input" names no field: use input.<path>, like input.tenant' });

/** The message of an object option: its unknown keys named, or what it must be. */
function objectError(shape: string) {
  return (issue: { code?: string; keys?: string[] }) => issue.code === 'unrecognized_keys' && issue.keys
    ? `unknown option ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}: must be ${shape}`
    : `must be ${shape}`;
}

const limitSchema = z.number({ error: 'must be a whole number from 1 to 10000' }).int('must be a whole number from 1 to 10000')
  .min(1, 'must be a whole number from 1 to 10000').max(10_000, 'must be a whole number from 1 to 10000');

/** `concurrency` of a workflow. */
export const workflowConcurrencySchema = z.strictObject({
  key: keySchema,
  limit: limitSchema,
  strategy: z.enum(['queue', 'cancel_newest', 'cancel_in_progress'], {
    error: 'must be "queue", "cancel_newest" or "cancel_in_progress"',
  }).optional(),
}, { error: objectError('an object {key, limit, strategy?}') });

/** `concurrency` of a step (no strategy: a step over the limit waits). */
export const stepConcurrencySchema = z.strictObject({
  key: keySchema,
  limit: limitSchema,
}, { error: objectError('an object {key, limit} (strategy is a workflow option: a step over its limit waits)') });

/** `rateLimit` of a workflow or a step. */
export const rateLimitSchema = z.strictObject({
  key: keySchema,
  limit: z.number({ error: 'must be a whole number from 1 to 100000' }).int('must be a whole number from 1 to 100000')
    .min(1, 'must be a whole number from 1 to 100000').max(100_000, 'must be a whole number from 1 to 100000'),
  periodMs: z.number({ error: 'must be a whole number of milliseconds from 1 to 86400000 (a day)' }).int('must be a whole number of milliseconds from 1 to 86400000 (a day)')
    .min(1, 'must be a whole number of milliseconds from 1 to 86400000 (a day)').max(DAY_MS, 'must be a whole number of milliseconds from 1 to 86400000 (a day)'),
}, { error: objectError('an object {key, limit, periodMs}') });

/** A concurrency key resolved for one run: where it counts, its value's label, its limit. */
export interface ResolvedKey {
  /** `run:<workflow>` or `step:<workflow>` (step keys are shared by the steps of a workflow). */
  scope: string;
  /** The key's value as shown and counted: `tenant=a` for `input.tenant`, the constant itself otherwise. */
  key: string;
  limit: number;
}

/** The flow control a step of one run is under, stored in its options (`options.flow`). */
export interface StepFlowJson {
  /** The run's workflow-level concurrency (on every step of the run). */
  run?: ResolvedKey & { strategy: ConcurrencyStrategy };
  /** The step's own concurrency. */
  step?: ResolvedKey;
  /** The workflow's rate limit of run starts (on root steps only: a run starts with them). */
  runRate?: ResolvedKey & { periodMs: number };
  /** The step's rate limit of starts. */
  stepRate?: ResolvedKey & { periodMs: number };
}

/** The flow-control fields of a resolved workflow and its steps (absent when unset, so versions keep their hash). */
export interface FlowFields {
  concurrency?: WorkflowConcurrency;
  rateLimit?: RateLimit;
}

/**
 * The value of a key for a run: a constant is itself; `input.a.b` is the
 * value at that path, labelled `a.b=<value>` (strings as they are, other JSON
 * as JSON; a missing value is `a.b=null`), at most 300 characters. The key
 * `workspace` (an extension of CONTRACT §8) is the run's workspace, as API keys
 * scope it, labelled `workspace=<name>`: a tenant cannot dodge it through its input.
 */
export function keyValueOf(key: string, input: Record<string, unknown> | null | undefined, workspace = 'default'): string {
  if (key === 'workspace') return `workspace=${workspace}`.slice(0, 300);
  if (!key.startsWith('input.')) return key;
  const path = key.slice(6);
  let value: unknown = input ?? {};
  for (const part of path.split('.')) {
    value = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[part] : undefined;
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value ?? null);
  return `${path}=${text}`.slice(0, 300);
}

/**
 * `{ flow }` for a step's options in one run (from the workflow's and the
 * step's definitions and the run input), or `{}` when neither has flow
 * control: the options of steps without it stay as they were.
 */
export function flowOptionsOf(
  workflow: { name: string } & FlowFields,
  step: { dependsOn: string[] } & Omit<FlowFields, 'concurrency'> & { concurrency?: StepConcurrency },
  input: Record<string, unknown> | null | undefined,
  workspace = 'default',
): { flow?: StepFlowJson } {
  const flow: StepFlowJson = {};
  if (workflow.concurrency) {
    const c = workflow.concurrency;
    flow.run = { scope: `run:${workflow.name}`, key: keyValueOf(c.key, input, workspace), limit: c.limit, strategy: c.strategy ?? 'queue' };
  }
  if (step.concurrency) flow.step = { scope: `step:${workflow.name}`, key: keyValueOf(step.concurrency.key, input, workspace), limit: step.concurrency.limit };
  if (workflow.rateLimit && step.dependsOn.length === 0) {
    const r = workflow.rateLimit;
    flow.runRate = { scope: `run-rate:${workflow.name}`, key: keyValueOf(r.key, input, workspace), limit: r.limit, periodMs: r.periodMs };
  }
  if (step.rateLimit) {
    const r = step.rateLimit;
    flow.stepRate = { scope: `step-rate:${workflow.name}`, key: keyValueOf(r.key, input, workspace), limit: r.limit, periodMs: r.periodMs };
  }
  return Object.keys(flow).length ? { flow } : {};
}

/** Whether a step's flow options need a place under a concurrency key before its job is enqueued. */
export function needsAdmission(flow: StepFlowJson | undefined): boolean {
  return flow !== undefined && (flow.run !== undefined || flow.step !== undefined);
}

/** Whether a step's starts go through the rate limiter. */
export function isRateLimited(flow: StepFlowJson | undefined): boolean {
  return flow !== undefined && (flow.runRate !== undefined || flow.stepRate !== undefined);
}
