import { z } from 'zod';
import { DefinitionError } from '../errors';
import { DAY_MS } from '../json';
import type { StepOptionsJson } from '../entities/step.entity';
import type { ResolvedStep, StepDefinition } from '../types';
import { JOIN_POLICIES, MAX_MAP_ELEMENTS, WAIT_PROCESSORS } from './kinds';

const PATH = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}(\.[^.\s]{1,64}){0,16}$/;
const pathSchema = z.string().regex(PATH, 'must be a dotted path such as "fetch.links" or "input.tenant"');

/** The definition keys of the kinds of CONTRACT §7 (merged into the step schema). */
export const waitStepKeys = {
  map: z.strictObject({ over: pathSchema }).optional(),
  run: z.strictObject({
    workflow: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must name a workflow'),
    input: z.union([z.literal('input'), pathSchema]).optional(),
  }).optional(),
  sleep: z.union([
    z.strictObject({ ms: z.number().int().min(0).max(365 * DAY_MS) }),
    z.strictObject({ until: pathSchema }),
  ], { error: 'sleep must be { ms } or { until: "<step>.<path>" | "input.<path>" }' }).optional(),
  waitFor: z.strictObject({
    signal: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}'),
    timeoutMs: z.number().int().min(1).max(365 * DAY_MS).optional(),
  }).optional(),
  join: z.enum(JOIN_POLICIES as [string, ...string[]], { error: 'join must be "all_succeeded", "all_settled" or "any_succeeded"' }).optional(),
};

/** A workflow's `onFailure` step: a processor name, or a step without `dependsOn`. */
export const onFailureSchema = z.union([
  z.string().min(1).max(160),
  z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).optional(),
    processor: z.string().min(1).max(160),
    attempts: z.number().int().min(1).max(100).optional(),
    timeoutMs: z.number().int().min(1).max(DAY_MS).optional(),
    queue: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/).optional(),
  }),
]).optional();

type KindKey = 'map' | 'run' | 'sleep' | 'waitFor';
const KIND_KEYS: KindKey[] = ['map', 'run', 'sleep', 'waitFor'];

/**
 * Checks a step's kind (exactly one of `processor`, `map`, `run`, `sleep`,
 * `waitFor` decides it; a map also names its `processor`) and its paths (the
 * first segment is `input` or a direct dependency). Returns the resolved
 * processor (a built-in for the waiting kinds) and the extra fields of the
 * resolved step (absent when not given, so older definitions keep their hash).
 */
export function resolveStepKind(label: string, step: StepDefinition): { processor: string; userProcessor?: string; extra: Partial<ResolvedStep> } {
  const where = `${label}, step "${step.name}"`;
  const kinds = KIND_KEYS.filter((k) => step[k] !== undefined);
  if (kinds.length > 1) throw new DefinitionError(`${where}: set only one of map, run, sleep, waitFor (it has ${kinds.join(' and ')})`);
  const kind = kinds[0];
  const deps = step.dependsOn ?? [];
  const checkPath = (key: string, path: string | undefined) => {
    if (path === undefined || path === 'input') return;
    const head = path.split('.')[0];
    if (head !== 'input' && !deps.includes(head)) {
      throw new DefinitionError(`${where}: ${key} "${path}" must start with "input" or a step it dependsOn (${deps.length ? deps.join(', ') : 'none'})`);
    }
  };
  if (step.join !== undefined && deps.length === 0) throw new DefinitionError(`${where}: join needs dependsOn`);
  if (typeof step.concurrency === 'number' && kind !== 'map') throw new DefinitionError(`${where}: concurrency (a number) is for map steps; other steps take {key, limit}`);
  if (kind === 'map' && step.concurrency !== undefined && typeof step.concurrency !== 'number') {
    throw new DefinitionError(`${where}: a map step's concurrency is a number (how many elements run at once)`);
  }
  const extra: Partial<ResolvedStep> = step.join !== undefined ? { join: step.join } : {};
  if (kind === undefined) {
    if (step.processor === undefined) throw new DefinitionError(`${where}: needs a processor (or one of map, run, sleep, waitFor)`);
    return { processor: step.processor, extra };
  }
  if (kind === 'map') {
    if (step.processor === undefined) throw new DefinitionError(`${where}: a map step names the processor that runs each element`);
    checkPath('map.over', step.map!.over);
    return {
      processor: WAIT_PROCESSORS.map, userProcessor: step.processor,
      extra: { ...extra, map: { over: step.map!.over, processor: step.processor, ...(typeof step.concurrency === 'number' ? { concurrency: step.concurrency } : {}) } },
    };
  }
  if (step.processor !== undefined) throw new DefinitionError(`${where}: a ${kind} step has no processor (drover runs it)`);
  if (kind === 'run') {
    checkPath('run.input', step.run!.input);
    return { processor: WAIT_PROCESSORS.run, extra: { ...extra, run: { ...step.run! } } };
  }
  if (kind === 'sleep') {
    const sleep = step.sleep as { ms?: number; until?: string };
    if (sleep.until !== undefined) {
      if (sleep.until === 'input') throw new DefinitionError(`${where}: sleep.until must be a path to an ISO time, such as "input.at"`);
      checkPath('sleep.until', sleep.until);
    }
    return { processor: WAIT_PROCESSORS.sleep, extra: { ...extra, sleep: { ...sleep } } };
  }
  return { processor: WAIT_PROCESSORS.waitFor, extra: { ...extra, waitFor: { ...step.waitFor! } } };
}

/** The options a step row keeps for its kind (merged into the step's options at run creation). */
export function kindOptionsOf(step: ResolvedStep): Partial<StepOptionsJson> {
  return {
    ...(step.join ? { join: step.join } : {}),
    ...(step.map ? { map: step.map } : {}),
    ...(step.run ? { run: step.run } : {}),
    ...(step.sleep ? { sleep: step.sleep } : {}),
    ...(step.waitFor ? { waitFor: step.waitFor } : {}),
  };
}

/** The map concurrency's bounds. */
export const mapConcurrencySchema = z.number().int().min(1).max(MAX_MAP_ELEMENTS).optional();
