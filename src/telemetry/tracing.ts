import * as path from 'node:path';
import {
  context, INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace,
  type Attributes, type Context, type Span, type TextMapPropagator, type Tracer, type TracerProvider,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import type { Telemetry as BullTelemetry } from 'bullmq';
import { VERSION } from '../version';

/** Options of `Tracing`. */
export interface TracingOptions {
  /** Where spans go (the SDK's `NodeTracerProvider`, or any provider). Not registered globally. */
  tracerProvider: TracerProvider;
  /** Trace Postgres statements (`@opentelemetry/instrumentation-pg`, inside traced work only). Default true. */
  postgres?: boolean;
  /** Called by `close()` after the instrumentation is removed (flush and stop an owned provider). */
  onClose?: () => Promise<void>;
}

/**
 * drover's OpenTelemetry tracing, injected like `Metrics`: a `Drover` or a
 * worker given one traces `createRun`, BullMQ's calls and every step attempt;
 * without one nothing is traced and the hot path only tests `tracing` for
 * undefined. The provider is not registered as the global one; what is
 * process-wide is what OpenTelemetry needs to be: the async context manager
 * (so spans follow `await`), and the patch of `pg`'s client (one Tracing per
 * process traces Postgres: the latest made).
 *
 * The trace context of a run travels in its jobs (BullMQ's `telemetry.metadata`
 * job option, W3C `traceparent`): a step promoted by its parent's success is
 * enqueued with the parent attempt's context, so one trace holds the run from
 * `createRun` through every attempt of every step.
 */
export class Tracing {
  readonly tracer: Tracer;
  readonly propagator: TextMapPropagator = new W3CTraceContextPropagator();
  private readonly pg?: { instrumentation: PgInstrumentation; unpatch: () => void };
  private closed?: Promise<void>;

  constructor(private readonly options: TracingOptions) {
    // Without a context manager every span would be a root: install the standard one unless one is there
    // (the API refuses a second registration and keeps the first).
    const manager = new AsyncLocalStorageContextManager().enable();
    if (!context.setGlobalContextManager(manager)) manager.disable();
    this.tracer = options.tracerProvider.getTracer('drover', VERSION);
    if (options.postgres ?? true) this.pg = instrumentPostgres(options.tracerProvider);
  }

  /**
   * Runs `work` in a new active span (a child of `parent`, default the active
   * context): its exception is recorded and marks the span as an error.
   */
  async inSpan<T>(name: string, attributes: Attributes, work: (span: Span) => Promise<T>, options: { parent?: Context; kind?: SpanKind } = {}): Promise<T> {
    return this.tracer.startActiveSpan(name, { attributes, kind: options.kind ?? SpanKind.INTERNAL }, options.parent ?? context.active(), async (span) => {
      try {
        return await work(span);
      } catch (error) {
        markFailed(span, error);
        throw error;
      } finally {
        span.end();
      }
    });
  }

  /** The trace context of incoming HTTP headers (`traceparent`, `tracestate`), as a parent for the request's spans. */
  contextFromHeaders(headers: Record<string, string | string[] | undefined>): Context {
    return this.propagator.extract(ROOT_CONTEXT, headers, {
      get: (carrier, key) => carrier[key],
      keys: (carrier) => Object.keys(carrier),
    });
  }

  /** The active context as BullMQ job metadata (JSON of the W3C headers). */
  metadataOf(ctx: Context = context.active()): string {
    const carrier: Record<string, string> = {};
    this.propagator.inject(ctx, carrier, { set: (c, k, v) => { c[k] = v; } });
    return JSON.stringify(carrier);
  }

  /**
   * BullMQ's telemetry interface over this tracer (what `bullmq-otel` does over
   * the global one): spans for `add`, `addBulk`, `process`, … and the context in
   * each job. BullMQ's idle housekeeping (polls, stalled checks) outside any
   * trace makes no span.
   */
  bullmq(): BullTelemetry<Context> {
    const { tracer, propagator } = this;
    const wrap = (span: Span) => ({
      setSpanOnContext: (ctx: Context) => trace.setSpan(ctx, span),
      setAttribute: (key: string, value: any) => { span.setAttribute(key, value); },
      setAttributes: (attributes: any) => { span.setAttributes(attributes); },
      addEvent: (name: string, attributes?: any) => { span.addEvent(name, attributes); },
      recordException: (exception: any, time?: any) => {
        span.recordException(exception, time);
        span.setStatus({ code: SpanStatusCode.ERROR, message: typeof exception === 'string' ? exception : exception?.message });
      },
      end: () => span.end(),
    });
    return {
      tracer: {
        startSpan(name, options, ctx?: Context) {
          const parent = ctx ?? context.active();
          if ((options?.kind ?? SpanKind.INTERNAL) === SpanKind.INTERNAL && !trace.getSpan(parent)) {
            return wrap(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
          }
          return wrap(tracer.startSpan(name, { kind: options?.kind as number as SpanKind }, parent));
        },
      },
      contextManager: {
        with: (ctx, fn) => context.with(ctx, fn),
        active: () => context.active(),
        root: () => ROOT_CONTEXT,
        getMetadata: (ctx) => this.metadataOf(ctx),
        fromMetadata(active, metadata) {
          try {
            return propagator.extract(active, JSON.parse(metadata), { get: (c, k) => c[k], keys: (c) => Object.keys(c) });
          } catch {
            return active; // metadata of a job from elsewhere: not ours to trust
          }
        },
      },
    };
  }

  /**
   * Runs a step attempt in its span (a child of the active context, BullMQ's
   * `process` span). Its outcome is set by `annotate` and `failAttempt` from
   * inside, not from how `work` settles (BullMQ's delay and "do not retry"
   * signals are thrown, whatever the step's outcome).
   */
  inAttemptSpan<T>(name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
    return this.tracer.startActiveSpan(name, { attributes, kind: SpanKind.INTERNAL }, async (span) => {
      try {
        return await work();
      } finally {
        span.end();
      }
    });
  }

  /** Marks the active attempt span failed with the processor's error (`attempt_failed`: it is retried; `failed`: for good). */
  failAttempt(error: unknown, outcome: 'attempt_failed' | 'failed'): void {
    const span = trace.getSpan(context.active());
    if (!span) return;
    markFailed(span, error);
    span.setAttribute('drover.step.outcome', outcome);
  }

  /** Sets attributes on the active span (no-op outside a span). */
  annotate(attributes: Attributes): void {
    trace.getSpan(context.active())?.setAttributes(attributes);
  }

  /** The active span's ids, for log lines (undefined outside a recorded span). */
  currentIds(): { trace_id: string; span_id: string } | undefined {
    const ctx = trace.getSpan(context.active())?.spanContext();
    return ctx && ctx.traceId !== INVALID_SPAN_CONTEXT.traceId ? { trace_id: ctx.traceId, span_id: ctx.spanId } : undefined;
  }

  /** Removes the Postgres instrumentation and flushes (once). */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.pg?.unpatch();
      await this.options.onClose?.();
    })();
    return this.closed;
  }
}

/** Marks a span failed with the error (message and type; never the error's data). */
export function markFailed(span: Span, error: unknown): void {
  const e = error as { message?: unknown; name?: unknown };
  span.recordException({ name: typeof e?.name === 'string' ? e.name : 'Error', message: typeof e?.message === 'string' ? e.message : String(error) });
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof e?.message === 'string' ? e.message : undefined });
}

/**
 * Patches the loaded `pg` (and `pg-pool`) with the official instrumentation,
 * reporting to `provider`. The patch is applied to the modules themselves
 * (the ones drover's pools use), so it works whatever loaded `pg` first.
 * Statements outside a traced operation (heartbeats, lease checks) make no span,
 * and no statement's parameters are recorded.
 */
function instrumentPostgres(provider: TracerProvider): { instrumentation: PgInstrumentation; unpatch: () => void } {
  // Loaded here, not at import: a process without tracing never loads the instrumentation.
  const { PgInstrumentation: Instrumentation } = require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  const instrumentation = new Instrumentation({ enabled: false, requireParentSpan: true, enhancedDatabaseReporting: false });
  instrumentation.setTracerProvider(provider);
  // The very modules drover's pools use: pg-pool as pg resolves it.
  const pgPath = require.resolve('pg');
  const modules: Record<string, unknown> = { pg: require(pgPath), 'pg-pool': require(require.resolve('pg-pool', { paths: [path.dirname(pgPath)] })) };
  const definitions = instrumentation.getModuleDefinitions().filter((d) => d.name in modules);
  for (const d of definitions) d.patch?.(modules[d.name], undefined);
  return { instrumentation, unpatch: () => { for (const d of definitions) d.unpatch?.(modules[d.name], undefined); } };
}
