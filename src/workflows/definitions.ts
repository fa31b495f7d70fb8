import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DefinitionError } from '../errors';
import { DAY_MS, findNonJson, isJsonObject } from '../json';
import { assertJsonSchema } from './input-schema';
import { mapConcurrencySchema, onFailureSchema, resolveStepKind, waitStepKeys } from '../waits/definition';
import { rateLimitSchema, stepConcurrencySchema, workflowConcurrencySchema } from '../flow/flow-spec';
import type { CompilableWorkflow, DroverModule, Processor, ResolvedStep, ResolvedWorkflow, StepDefinition, WorkflowDefinition } from '../types';

/** Workflow names: `[a-z0-9][a-z0-9._-]{0,63}`. */
export const WORKFLOW_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Step names. */
export const STEP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Queue names (no `:`; BullMQ forbids it). */
export const QUEUE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** BullMQ's largest priority. */
export const MAX_PRIORITY = 2_097_152;

const backoffSchema = z.strictObject({
  type: z.enum(['fixed', 'exponential'], { error: 'backoff.type must be "fixed" or "exponential"' }),
  delayMs: z.number().int().min(0).max(DAY_MS),
});

/**
 * A step's `concurrency`: a number on a map step (its elements at once, CONTRACT §7), an object
 * `{key, limit}` on any other step (CONTRACT §8); each form keeps its own precise messages.
 */
const stepOrMapConcurrencySchema = z.any().optional().superRefine((value, ctx) => {
  if (value === undefined) return;
  const checked = (typeof value === 'number' ? mapConcurrencySchema : stepConcurrencySchema).safeParse(value);
  if (!checked.success) for (const issue of checked.error.issues) ctx.addIssue({ ...issue } as Parameters<typeof ctx.addIssue>[0]);
});

const stepSchema = z.strictObject({
  name: z.string().regex(STEP_NAME, 'must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}'),
  // Typed workflows name their processors `<workflow>/<step>` (up to 129 characters).
  processor: z.string().min(1).max(160).optional(),
  ...waitStepKeys,
  concurrency: stepOrMapConcurrencySchema,
  dependsOn: z.array(z.string()).max(1000).optional(),
  attempts: z.number().int().min(1).max(100).optional(),
  backoff: backoffSchema.optional(),
  delayMs: z.number().int().min(0).max(30 * DAY_MS).optional(),
  timeoutMs: z.number().int().min(1).max(DAY_MS).optional(),
  queue: z.string().regex(QUEUE_NAME, 'must match [a-z0-9][a-z0-9_-]{0,63}').optional(),
  priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
  params: z.record(z.string(), z.unknown(), { error: 'params must be a JSON object' }).optional(),
  rateLimit: rateLimitSchema.optional(),
});

const workflowSchema = z.strictObject({
  name: z.string().regex(WORKFLOW_NAME, 'must match [a-z0-9][a-z0-9._-]{0,63}'),
  failFast: z.boolean().optional(),
  steps: z.array(stepSchema).min(1, 'a workflow needs at least one step').max(10_000),
  output: z.string().optional(),
  inputSchema: z.record(z.string(), z.unknown(), { error: 'inputSchema must be a JSON Schema object' }).optional(),
  onFailure: onFailureSchema,
  concurrency: workflowConcurrencySchema.optional(),
  rateLimit: rateLimitSchema.optional(),
  // Carried through when a stored (resolved) definition is validated again.
  version: z.string().optional(),
});

/** Default options of a step. */
export const STEP_DEFAULTS = {
  attempts: 3,
  backoff: { type: 'exponential', delayMs: 1000 } as const,
  delayMs: 0,
  queue: 'default',
  priority: 0,
};

/**
 * Validates a workflow definition and resolves every default. Throws
 * `DefinitionError` naming the workflow and step: bad option types and ranges,
 * duplicate step names, unknown `dependsOn`, cycles (the cycle is named), and
 * unknown processors when `processors` is given.
 */
export function resolveWorkflow(definition: unknown, processors?: Record<string, unknown>): ResolvedWorkflow {
  const label = workflowLabel(definition);
  const parsed = workflowSchema.safeParse(definition);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DefinitionError(`${label}${describePath(definition, issue.path)}: ${issue.message}`, { path: issue.path });
  }
  const wf = parsed.data as WorkflowDefinition;
  const names = new Set<string>();
  const kinds = new Map<string, ReturnType<typeof resolveStepKind>>();
  for (const step of wf.steps) {
    if (names.has(step.name)) throw new DefinitionError(`${label}: duplicate step name "${step.name}"`);
    names.add(step.name);
  }
  for (const step of wf.steps) {
    const deps = step.dependsOn ?? [];
    const seen = new Set<string>();
    for (const dep of deps) {
      if (dep === step.name) throw new DefinitionError(`${label}, step "${step.name}": depends on itself`);
      if (!names.has(dep)) throw new DefinitionError(`${label}, step "${step.name}": dependsOn names unknown step "${dep}"`);
      if (seen.has(dep)) throw new DefinitionError(`${label}, step "${step.name}": dependsOn lists "${dep}" twice`);
      seen.add(dep);
    }
    if (step.params !== undefined) {
      const bad = isJsonObject(step.params) ? findNonJson(step.params, 'params') : 'params must be a JSON object';
      if (bad) throw new DefinitionError(`${label}, step "${step.name}": ${bad}`);
    }
    const kind = resolveStepKind(label, step);
    const userProcessor = kind.userProcessor ?? kind.processor;
    if (processors && !kind.processor.startsWith('drover:') && typeof processors[userProcessor] !== 'function') {
      throw new DefinitionError(`${label}, step "${step.name}": unknown processor "${userProcessor}"`);
    }
    if (processors && kind.userProcessor && typeof processors[kind.userProcessor] !== 'function') {
      throw new DefinitionError(`${label}, step "${step.name}": unknown processor "${kind.userProcessor}"`);
    }
    kinds.set(step.name, kind);
  }
  const onFailure = resolveOnFailure(label, wf.onFailure, names, processors);
  if (wf.inputSchema !== undefined) {
    try {
      assertJsonSchema(wf.inputSchema);
    } catch (error) {
      throw new DefinitionError(`${label}: ${(error as Error).message}`);
    }
  }
  if (wf.output !== undefined && !names.has(wf.output)) throw new DefinitionError(`${label}: output names unknown step "${wf.output}"`);
  const cycle = findCycle(wf.steps);
  if (cycle) throw new DefinitionError(`${label}: dependency cycle ${cycle.join(' → ')}`, { cycle });

  const steps: ResolvedStep[] = wf.steps.map((s: StepDefinition) => ({
    name: s.name,
    processor: kinds.get(s.name)!.processor,
    dependsOn: s.dependsOn ?? [],
    attempts: s.attempts ?? STEP_DEFAULTS.attempts,
    backoff: s.backoff ?? { ...STEP_DEFAULTS.backoff },
    delayMs: s.delayMs ?? STEP_DEFAULTS.delayMs,
    timeoutMs: s.timeoutMs ?? null,
    queue: s.queue ?? STEP_DEFAULTS.queue,
    priority: s.priority ?? STEP_DEFAULTS.priority,
    // Absent rather than `{}`, so the versions of definitions without params keep their hash.
    ...(s.params === undefined ? {} : { params: s.params }),
    ...kinds.get(s.name)!.extra,
    ...(s.concurrency === undefined || typeof s.concurrency === 'number' ? {} : { concurrency: s.concurrency }),
    ...(s.rateLimit === undefined ? {} : { rateLimit: s.rateLimit }),
  }));
  const body = {
    name: wf.name, failFast: wf.failFast ?? false, steps,
    ...(wf.output === undefined ? {} : { output: wf.output }),
    ...(wf.inputSchema === undefined ? {} : { inputSchema: wf.inputSchema }),
    ...(onFailure ? { onFailure } : {}),
    ...(wf.concurrency === undefined ? {} : { concurrency: wf.concurrency }),
    ...(wf.rateLimit === undefined ? {} : { rateLimit: wf.rateLimit }),
  };
  return { ...body, version: hashDefinition(body) };
}

/** The workflow's `onFailure` step, resolved (a processor step with no dependencies, not counted among the run's steps). */
function resolveOnFailure(label: string, given: WorkflowDefinition['onFailure'], names: Set<string>, processors?: Record<string, unknown>): ResolvedStep | undefined {
  if (given === undefined) return undefined;
  const o = typeof given === 'string' ? { processor: given } : given;
  const name = o.name ?? 'onFailure';
  if (names.has(name)) throw new DefinitionError(`${label}: onFailure is named "${name}", as a step is already (give it another name)`);
  if (o.processor.startsWith('drover:')) throw new DefinitionError(`${label}: onFailure names a built-in processor`);
  if (processors && typeof processors[o.processor] !== 'function') throw new DefinitionError(`${label}, onFailure: unknown processor "${o.processor}"`);
  return {
    name, processor: o.processor, dependsOn: [], attempts: o.attempts ?? STEP_DEFAULTS.attempts, backoff: { ...STEP_DEFAULTS.backoff },
    delayMs: 0, timeoutMs: o.timeoutMs ?? null, queue: o.queue ?? STEP_DEFAULTS.queue, priority: 0,
  };
}

/** Whether a value compiles to a plain definition (a typed workflow builder, from this or another copy of drover). */
export function isCompilableWorkflow(value: unknown): value is CompilableWorkflow {
  return typeof value === 'object' && value !== null
    && typeof (value as CompilableWorkflow).toDefinition === 'function' && typeof (value as CompilableWorkflow).toProcessors === 'function';
}

/**
 * Compiles the typed workflows of a list into plain definitions, adding their
 * processors to `processors`; plain definitions pass through unchanged.
 */
export function compileWorkflows(list: ReadonlyArray<WorkflowDefinition | CompilableWorkflow>, processors: Record<string, Processor>, source = 'module'): WorkflowDefinition[] {
  return list.map((item) => {
    if (!isCompilableWorkflow(item)) return item;
    for (const [name, fn] of Object.entries(item.toProcessors())) {
      if (processors[name] && processors[name] !== fn) throw new DefinitionError(`${source}: two processors are named "${name}"`);
      processors[name] = fn;
    }
    return item.toDefinition();
  });
}

/** Validates a module's workflows and processors together (typed workflows are compiled first). */
export function resolveModule(mod: DroverModule, source = 'module'): { workflows: ResolvedWorkflow[]; processors: Record<string, Processor> } {
  if (typeof mod !== 'object' || mod === null) throw new DefinitionError(`${source} must export an object with workflows and processors`);
  const given = mod.processors ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new DefinitionError(`${source}: processors must be an object of functions by name`);
  }
  const processors: Record<string, Processor> = { ...given };
  for (const [name, fn] of Object.entries(processors)) {
    if (typeof fn !== 'function') throw new DefinitionError(`${source}: processor "${name}" is not a function`);
  }
  const list = mod.workflows ?? [];
  if (!Array.isArray(list)) throw new DefinitionError(`${source}: workflows must be an array`);
  const workflows = compileWorkflows(list, processors, source).map((wf) => resolveWorkflow(wf, processors));
  const seen = new Set<string>();
  for (const wf of workflows) {
    if (seen.has(wf.name)) throw new DefinitionError(`${source}: duplicate workflow name "${wf.name}"`);
    seen.add(wf.name);
  }
  return { workflows, processors: processors as Record<string, Processor> };
}

/** Typed identity helper for a workflow definition. */
export function defineWorkflow<const W extends WorkflowDefinition>(workflow: W): W {
  return workflow;
}

/** Typed identity helper for a processor. */
export function defineProcessor<Input = Record<string, unknown>, Output = unknown>(processor: Processor<Input, Output>): Processor<Input, Output> {
  return processor;
}

function hashDefinition(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex').slice(0, 16);
}

/** JSON with sorted object keys, so equal definitions hash equally. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function workflowLabel(definition: unknown): string {
  const name = (definition as { name?: unknown } | null)?.name;
  return typeof name === 'string' && name.length <= 64 ? `workflow "${name}"` : 'workflow';
}

function describePath(definition: unknown, path: PropertyKey[]): string {
  if (path[0] === 'steps' && typeof path[1] === 'number') {
    const step = (definition as { steps?: Array<{ name?: unknown }> }).steps?.[path[1]];
    const name = typeof step?.name === 'string' && step.name.length <= 64 ? `"${step.name}"` : `#${path[1] + 1}`;
    const rest = path.slice(2).join('.');
    return `, step ${name}${rest ? `: ${rest}` : ''}`;
  }
  return path.length ? `: ${path.join('.')}` : '';
}

/**
 * A dependency cycle, or undefined. Depth-first with an explicit stack (a
 * 10,000-step chain would overflow the call stack of a recursive search).
 */
function findCycle(steps: StepDefinition[]): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.name, s.dependsOn ?? []]));
  const state = new Map<string, 'visiting' | 'done'>();
  for (const root of steps) {
    if (state.has(root.name)) continue;
    // The path from the root, each name with the index of the next dependency to follow.
    const path: Array<{ name: string; next: number }> = [{ name: root.name, next: 0 }];
    state.set(root.name, 'visiting');
    while (path.length) {
      const top = path[path.length - 1];
      const dep = deps.get(top.name)?.[top.next++];
      if (dep === undefined) {
        state.set(top.name, 'done');
        path.pop();
      } else if (state.get(dep) === 'visiting') {
        const cycle = [...path.slice(path.findIndex((p) => p.name === dep)).map((p) => p.name), dep];
        // Reported in execution order: a → b means b depends on a.
        return cycle.reverse();
      } else if (!state.has(dep)) {
        state.set(dep, 'visiting');
        path.push({ name: dep, next: 0 });
      }
    }
  }
  return undefined;
}
