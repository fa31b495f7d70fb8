import { NonRetryableError } from '../../src/errors';
import type { Processor, ProcessorContext } from '../../src/types';

/** Counts invocations per key (step name by default). */
export class Calls {
  readonly counts = new Map<string, number>();
  readonly order: string[] = [];
  record(key: string): number {
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    this.order.push(key);
    return n;
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }
}

/** Resolves after `ms`, or rejects when the step's signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });
}

/** A processor that fails its first `failures` attempts, then returns `{ attempt }`. */
export function flaky(failures: number, calls?: Calls): Processor {
  return async (ctx: ProcessorContext) => {
    calls?.record(ctx.step.name);
    if (ctx.step.attempt <= failures) throw new Error(`flaky failure ${ctx.step.attempt}`);
    return { attempt: ctx.step.attempt };
  };
}

/** A processor that always fails without retry. */
export const fatal: Processor = async () => {
  throw new NonRetryableError('fatal failure');
};

/** A processor that echoes its name and parents' outputs. */
export function echo(calls?: Calls): Processor {
  return async (ctx: ProcessorContext) => {
    calls?.record(ctx.step.name);
    return { step: ctx.step.name, parents: ctx.parents };
  };
}
