import { context } from '@opentelemetry/api';
import type { RequestHandler } from 'express';
import type { Tracing } from '../telemetry/tracing';

/**
 * With tracing on, runs the rest of an API request in the trace context of its
 * W3C headers (`traceparent`), so a producer's trace continues through
 * `POST /api/runs` into the run. Without tracing, or without the header, it does
 * nothing (the run's own span is then a root).
 */
export function traceContext(tracing: Tracing | undefined): RequestHandler {
  if (!tracing) return (_req, _res, next) => next();
  return (req, _res, next) => {
    if (!req.headers.traceparent) return next();
    context.with(tracing.contextFromHeaders(req.headers), next);
  };
}
