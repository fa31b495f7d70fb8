import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config';

export type { Logger };

/** Anything shaped like a drover API key: `drv_<12 hex>_<secret>`. */
const KEY_SHAPED = /drv_([0-9a-fA-F]{12})_[A-Za-z0-9_-]+/g;

/**
 * Masks every drover-key-shaped string in a text, keeping its public prefix
 * (`drv_<prefix>_***`) so operators can still tell which key it was.
 */
export function maskKeys(text: string): string {
  return text.replace(KEY_SHAPED, 'drv_$1_***');
}

/**
 * Structured JSON logs. Secrets never reach them: authorization headers and
 * anything named like a key or password are redacted, and every line is
 * scanned as it is written for drover keys (in paths, messages, errors),
 * which are masked. `destination` defaults to stdout.
 */
export function createLogger(level: LogLevel = 'info', name = 'drover', destination?: DestinationStream, options: LoggerOptions = {}): Logger {
  const pinoOptions: pino.LoggerOptions = {
    name,
    level,
    redact: { paths: ['req.headers.authorization', '*.password', '*.apiKey', '*.key', 'key', 'apiKey'], censor: '[redacted]' },
    hooks: { streamWrite: maskKeys },
    // Only with tracing on: otherwise a log line costs nothing more.
    ...(options.traceIds ? { mixin: traceIdsOfActiveSpan } : {}),
  };
  const to = destination ?? (options.stderr ? pino.destination(2) : undefined);
  return to ? pino(pinoOptions, to) : pino(pinoOptions);
}

/** Options of `createLogger`. */
export interface LoggerOptions {
  /** Add `trace_id` and `span_id` of the active span to each line written inside one. Default false (tracing off). */
  traceIds?: boolean;
  /** Write to stderr instead of stdout (when stdout carries a command's JSON). Default false. */
  stderr?: boolean;
}

/** The ids of the active OpenTelemetry span (none outside a recorded span). */
function traceIdsOfActiveSpan(): Record<string, string> {
  const ctx = trace.getSpan(context.active())?.spanContext();
  return ctx && isSpanContextValid(ctx) ? { trace_id: ctx.traceId, span_id: ctx.spanId } : {};
}

/** A logger that writes nothing (library default). */
export const silentLogger: Logger = pino({ level: 'silent' });
