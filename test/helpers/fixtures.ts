import { NonRetryableError } from '../../src/errors';
import type { AuditEventView, Processor, ProcessorContext } from '../../src/types';

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

/** One attempt's start as the audit trail tells it. */
export interface AttemptStart {
  stepId: string | null;
  attempt: number;
  /** When it started, epoch ms. */
  at: number;
  actor: string;
  /** True when its start was written on its own (`step.started`); false when with its outcome (the one-write path). */
  recorded: boolean;
}

/**
 * The starts of attempts in a run's trail: each `step.started`, and each
 * outcome (`step.succeeded`, `step.attempt_failed`, `step.failed`) carrying
 * `startedAt` (an attempt whose start was written with its outcome; a final
 * failure recorded with its attempt's failure is one attempt).
 */
export function attemptStarts(audit: AuditEventView[], stepId?: string): AttemptStart[] {
  const starts: AttemptStart[] = [];
  for (const e of audit) {
    if (stepId && e.stepId !== stepId) continue;
    const data = (e.data ?? {}) as { attempt?: number; startedAt?: string };
    const attempt = data.attempt ?? 0;
    if (e.type === 'step.started') starts.push({ stepId: e.stepId, attempt, at: Date.parse(e.at), actor: e.actor, recorded: true });
    else if (['step.succeeded', 'step.attempt_failed', 'step.failed'].includes(e.type) && data.startedAt) {
      const at = Date.parse(data.startedAt);
      if (!starts.some((s) => s.stepId === e.stepId && s.attempt === attempt && s.at === at)) {
        starts.push({ stepId: e.stepId, attempt, at, actor: e.actor, recorded: false });
      }
    }
  }
  return starts;
}
