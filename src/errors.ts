/**
 * The error hierarchy of drover. Every error carries a stable `code` and says
 * whether retrying could help (`retryable`).
 */

/** Base class of every error drover raises on purpose. */
export class DroverError extends Error {
  /** Stable machine-readable code, e.g. `invalid_definition`. */
  readonly code: string;
  /** Whether the same operation may succeed when tried again. */
  readonly retryable: boolean;
  /** Optional structured details (validation issues, offending names). */
  readonly details?: unknown;

  constructor(code: string, message: string, options: { retryable?: boolean; details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

/**
 * Thrown by a processor to fail its step at once, without further attempts.
 * Any error with `retryable === false` has the same effect.
 */
export class NonRetryableError extends DroverError {
  constructor(message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super('non_retryable', message, { ...options, retryable: false });
  }
}

/** An attempt ran longer than its step's `timeoutMs`. Retryable. */
export class StepTimeoutError extends DroverError {
  constructor(readonly timeoutMs: number) {
    super('step_timeout', `step attempt timed out after ${timeoutMs} ms`, { retryable: true });
  }
}

/**
 * A create without an idempotency key lost its Postgres connection after COMMIT
 * was sent, so whether its runs exist is unknown: repeating it could create
 * them twice. Retryable by the caller, who knows whether a duplicate matters;
 * an `idempotencyKey` makes every retry safe (drover then retries by itself).
 */
export class CommitUnknownError extends DroverError {
  constructor(cause: unknown) {
    super('commit_unknown', 'Postgres went away while the create was committing: the run may or may not have been created '
      + '(send an idempotencyKey to make retrying safe)', { retryable: true, cause });
  }
}

/** Configuration (environment, options, CLI flags) is malformed. */
export class ConfigError extends DroverError {
  constructor(message: string) {
    super('invalid_config', message);
  }
}

/** A workflow definition is invalid; the message names the workflow and step. */
export class DefinitionError extends DroverError {
  constructor(message: string, details?: unknown) {
    super('invalid_definition', message, { details });
  }
}

/*
 * Domain errors: what went wrong, in the domain's words, with the contract's
 * error code. They carry no HTTP status; `http/errors.ts` alone maps codes to
 * statuses.
 */

/** A request (run, query, cursor, body) is malformed: `invalid_request`; `details` lists the issues. */
export class InvalidRequestError extends DroverError {
  constructor(message: string, details?: unknown) {
    super('invalid_request', message, { details });
  }
}

/** The run (or other object) does not exist: `not_found`. */
export class NotFoundError extends DroverError {
  constructor(what: string) {
    super('not_found', `${what} not found`);
  }
}

/** The object is not in a state that allows the action (cancel a finished run): `invalid_state`. */
export class InvalidStateError extends DroverError {
  constructor(message: string) {
    super('invalid_state', message);
  }
}

/** The caller's key may not do this (its scope or its workspaces): `forbidden`. */
export class ForbiddenError extends DroverError {
  constructor(message: string) {
    super('forbidden', message);
  }
}

/** No workflow of that name is registered: `unknown_workflow`. */
export class UnknownWorkflowError extends DroverError {
  constructor(readonly workflow: string) {
    super('unknown_workflow', `unknown workflow "${workflow}"`);
  }
}

/** An input or body is larger than its configured limit: `payload_too_large`. */
export class PayloadTooLargeError extends DroverError {
  constructor(message: string) {
    super('payload_too_large', message);
  }
}

/** A run input does not match the workflow's input schema: `invalid_input`; `details.path` names where. */
export class InvalidInputError extends DroverError {
  constructor(readonly workflow: string, readonly path: string, reason: string) {
    super('invalid_input', `the input does not match the input schema of workflow "${workflow}": ${path}: ${reason}`, { details: { path, message: reason } });
  }
}

/** A request names a step of the wrong kind (map elements of a step that is not a map step): `not_a_map_step`. */
export class NotAMapStepError extends DroverError {
  constructor(message: string) {
    super('not_a_map_step', message);
  }
}

/** Errors a request for a run can end with (the in-process API and HTTP alike). */
export type RequestError = InvalidRequestError | NotFoundError | ForbiddenError | InvalidStateError | UnknownWorkflowError | PayloadTooLargeError | InvalidInputError | NotAMapStepError;

export const invalidRequest = (message: string, details?: unknown) => new InvalidRequestError(message, details);
export const notFound = (what: string) => new NotFoundError(what);
export const forbidden = (message: string) => new ForbiddenError(message);
export const invalidState = (message: string) => new InvalidStateError(message);
export const unknownWorkflow = (name: string) => new UnknownWorkflowError(name);
export const payloadTooLarge = (message: string) => new PayloadTooLargeError(message);
export const notAMapStep = (message: string) => new NotAMapStepError(message);

/** Whether an error thrown by a processor must fail its step without retry. */
export function isNonRetryable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === false;
}

/** The JSON form of an error stored on a step or run (never a stack in API output). */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  retryable?: boolean;
}

/** Turns anything thrown into the JSON stored in `steps.error`. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const out: SerializedError = { name: error.name, message: error.message };
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    const retryable = (error as { retryable?: unknown }).retryable;
    if (typeof retryable === 'boolean') out.retryable = retryable;
    return out;
  }
  return { name: 'Error', message: typeof error === 'string' ? error : safeString(error) };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
