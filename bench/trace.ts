import { Client } from 'pg';
import { now } from './stats';

/**
 * Profiling aid (BENCH_TRACE=1 in a worker process): counts the Postgres
 * round trips of every statement kind and their summed latency, and prints
 * them per step on stop. Statements are keyed by their first words.
 */
export function traceQueries(): () => string {
  const stats = new Map<string, { calls: number; ms: number }>();
  const original = Client.prototype.query as (...args: any[]) => any;
  (Client.prototype as any).query = function traced(this: Client, ...args: any[]) {
    const text: string = typeof args[0] === 'string' ? args[0] : args[0]?.text ?? '?';
    const key = text.replace(/\s+/g, ' ').trim().slice(0, 90);
    const t = now();
    const done = () => {
      const s = stats.get(key) ?? { calls: 0, ms: 0 };
      s.calls++;
      s.ms += now() - t;
      stats.set(key, s);
    };
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      // pg.Pool#query passes a callback.
      args[args.length - 1] = (...cbArgs: unknown[]) => { done(); return last(...cbArgs); };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    if (result && typeof result.then === 'function') result.then(done, done);
    return result;
  };
  return () => [...stats.entries()].sort((a, b) => b[1].calls - a[1].calls)
    .map(([k, s]) => `${String(s.calls).padStart(7)} calls ${(s.ms / s.calls).toFixed(2).padStart(7)} ms avg  ${k}`).join('\n');
}
