import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { CommitUnknownError, DroverError } from '../errors';
import { isTransientError } from '../infra/retry';
import type { Logger } from '../telemetry/logger';

/** The JSON body of every error answer: `{"error":{"code","message","details"?}}`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** Sends the contract's error shape. */
export function sendError(res: Response, status: number, code: string, message: string, details?: unknown): void {
  const body: ErrorBody = { error: { code, message, ...(details === undefined ? {} : { details }) } };
  res.status(status).json(body);
}

/** The HTTP status of each domain error code (the only place statuses meet the domain). */
export const STATUS_OF_CODE: Readonly<Record<string, number>> = {
  invalid_request: 400,
  forbidden: 403,
  not_found: 404,
  invalid_state: 409,
  already_exists: 409,
  invalid_schedule: 422,
  payload_too_large: 413,
  unknown_workflow: 422,
  invalid_input: 422,
  not_a_map_step: 422,
};

/** 404 JSON for any path no route serves. */
export const unknownRoute: RequestHandler = (req, res) => {
  sendError(res, 404, 'not_found', `no route for ${req.method} ${req.path}`);
};

/** 405 JSON with an `Allow` header, for a known path asked with another method; the message names the full path (no query). */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  const allow = allowed.includes('GET') && !allowed.includes('HEAD') ? [...allowed, 'HEAD'] : allowed;
  return (req, res) => {
    res.setHeader('Allow', allow.join(', '));
    sendError(res, 405, 'method_not_allowed', `${req.method} is not allowed on ${req.originalUrl.split('?')[0]}; use ${allowed.join(' or ')}`);
  };
}

/** body-parser's error types (`err.type`) of a body the client sent wrong. */
const BODY_ERRORS: Record<string, string> = {
  'entity.parse.failed': 'the body is not valid JSON',
  'encoding.unsupported': 'the body has an unsupported content encoding',
  'charset.unsupported': 'the body has an unsupported charset',
  'request.aborted': 'the request was aborted',
  'request.size.invalid': 'the body is shorter or longer than its Content-Length',
  'stream.encoding.set': 'the body could not be read',
  'entity.verify.failed': 'the body could not be verified',
  'json.too.deep': 'the body nests objects and arrays too deeply (at most 64 levels)',
  'json.invalid.utf8': 'the body is not valid UTF-8',
};

/** Postgres SQLSTATE class 22 (data exception): a value the client sent that Postgres refuses. */
const isDataException = (error: unknown): boolean => {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code) && typeof (error as { severity?: unknown }).severity === 'string';
};

/**
 * The last middleware: turns anything thrown into the contract's error shape.
 * Client mistakes answer 4xx; a 500 means a real server fault and is logged
 * with its cause. No answer ever carries a stack trace.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof DroverError && STATUS_OF_CODE[error.code]) {
      sendError(res, STATUS_OF_CODE[error.code], error.code, error.message, error.details);
      return;
    }
    const type = (error as { type?: unknown })?.type;
    if (type === 'entity.too.large') {
      const limit = (error as { limit?: unknown }).limit;
      sendError(res, 413, 'payload_too_large', `the request body is larger than ${typeof limit === 'number' ? `${limit} bytes` : 'the limit'}`);
      return;
    }
    if (typeof type === 'string' && BODY_ERRORS[type]) {
      sendError(res, 400, 'invalid_request', BODY_ERRORS[type]);
      return;
    }
    const status = (error as { status?: unknown })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500 && (error as { expose?: unknown }).expose === true) {
      // http-errors raised by express itself (e.g. a malformed URI): the client's fault.
      sendError(res, status === 413 ? 413 : 400, status === 413 ? 'payload_too_large' : 'invalid_request', (error as Error).message);
      return;
    }
    if (error instanceof URIError) {
      sendError(res, 400, 'invalid_request', 'the URL is not correctly encoded');
      return;
    }
    if (isDataException(error)) {
      // Postgres' own text names internals (types, functions): logged, never sent back.
      logger.debug({ method: req.method, path: req.path, cause: (error as Error).message }, 'request refused by Postgres (data exception)');
      sendError(res, 400, 'invalid_request', 'a value in the request is not acceptable (out of range or malformed)');
      return;
    }
    if (error instanceof CommitUnknownError) {
      logger.warn({ method: req.method, path: req.originalUrl, cause: (error.cause as Error)?.message }, error.message);
      res.setHeader('Retry-After', '1');
      sendError(res, 503, 'unavailable', error.message);
      return;
    }
    if (isTransientError(error)) {
      logger.warn({ err: error, method: req.method, path: req.originalUrl }, 'request failed: storage unavailable');
      res.setHeader('Retry-After', '1');
      sendError(res, 503, 'unavailable', 'a backing service (Postgres or the queue) is unavailable; try again');
      return;
    }
    logger.error({ err: error, method: req.method, path: req.originalUrl }, 'request failed');
    sendError(res, 500, 'internal_error', 'internal server error');
  };
}
