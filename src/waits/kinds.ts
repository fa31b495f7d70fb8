import type { JoinPolicy, StepOptionsJson } from '../entities/step.entity';

/** The processor names of the step kinds drover runs itself (no user processor, no worker slot while waiting). */
export const WAIT_PROCESSORS = {
  map: 'drover:map',
  run: 'drover:run',
  sleep: 'drover:sleep',
  waitFor: 'drover:signal',
} as const;

/** Every built-in processor name (workers register them so the run page never says none has it). */
export const BUILT_IN_PROCESSORS: readonly string[] = Object.values(WAIT_PROCESSORS);

/** Whether a step's processor is one drover runs itself (a map, child-run, sleep or signal step). */
export function isWaitProcessor(processor: string): boolean {
  return processor.startsWith('drover:');
}

/** The most elements one map step takes. */
export const MAX_MAP_ELEMENTS = 10_000;

/** The join policies (CONTRACT §7). */
export const JOIN_POLICIES: readonly JoinPolicy[] = ['all_succeeded', 'all_settled', 'any_succeeded'];

/** The name of a map step's element. */
export function elementName(mapStep: string, index: number): string {
  return `${mapStep}[${index}]`;
}

/** Whether a step (by its options) needs its context prepared beyond what the start statement returns. */
export function needsPreparedContext(options: StepOptionsJson): boolean {
  return options.join === 'all_settled' || options.element !== undefined;
}

/**
 * The value at a dotted path (`fetch.links`, `input.tenant`) in
 * `{ input, ...parents }`. `found` is false when a segment is missing.
 */
export function valueAtPath(path: string, input: unknown, parents: Record<string, unknown>): { found: boolean; value?: unknown } {
  const [head, ...rest] = path.split('.');
  let value: unknown;
  if (head === 'input') value = input;
  else if (Object.prototype.hasOwnProperty.call(parents, head)) value = parents[head];
  else return { found: false };
  for (const key of rest) {
    if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, key)) return { found: false };
    value = (value as Record<string, unknown>)[key];
  }
  return { found: true, value };
}
