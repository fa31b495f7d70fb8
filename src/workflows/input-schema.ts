import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { InvalidInputError } from '../errors';

/** The first place a value breaks a schema: a dotted path from `input` and the reason. */
export interface InputIssue {
  path: string;
  message: string;
}

/** How many compiled validators an `InputValidator` keeps (one per workflow version). */
const MAX_VALIDATORS = 1000;

/**
 * Checks run inputs against the JSON Schema of their workflow version, with
 * Ajv (JSON Schema 2020-12, formats from ajv-formats). Each version's schema
 * is compiled once and kept (a version never changes: its hash covers the schema).
 */
export class InputValidator {
  private readonly ajv = createAjv();
  private readonly compiled = new Map<string, ValidateFunction>();

  /**
   * The first issue of `input` against `schema`, or undefined when it matches.
   * @param key the workflow version (`name@version`) the schema belongs to.
   */
  check(key: string, schema: Record<string, unknown>, input: unknown): InputIssue | undefined {
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile(withoutMetaSchema(schema));
      if (this.compiled.size >= MAX_VALIDATORS) this.compiled.clear();
      this.compiled.set(key, validate);
    }
    return validate(input) ? undefined : describeIssue(validate.errors?.[0]);
  }

  /** `invalid_input` for an input this workflow version's schema refuses (undefined: it matches, or there is no schema). */
  refusal(workflow: { name: string; version: string; inputSchema?: Record<string, unknown> | null }, input: unknown): InvalidInputError | undefined {
    if (!workflow.inputSchema) return undefined;
    const issue = this.check(`${workflow.name}@${workflow.version}`, workflow.inputSchema, input);
    return issue ? new InvalidInputError(workflow.name, issue.path, issue.message) : undefined;
  }
}

/** Throws a one-line reason when `schema` is not a JSON Schema Ajv can compile. */
export function assertJsonSchema(schema: Record<string, unknown>): void {
  try {
    createAjv().compile(withoutMetaSchema(schema));
  } catch (error) {
    throw new Error(`inputSchema is not a valid JSON Schema: ${(error as Error).message.split('\n')[0]}`);
  }
}

function createAjv(): Ajv2020 {
  // Not strict: schemas from other tools carry keywords (`default`, `description`, vendor ones) Ajv does not need.
  const ajv = new Ajv2020({ strict: false, allErrors: false, validateSchema: true });
  addFormats(ajv);
  return ajv;
}

/** Draft-07 and 2020-12 schemas are checked alike: the `$schema` URI is dropped rather than fetched. */
function withoutMetaSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}

function describeIssue(error: ErrorObject | undefined): InputIssue {
  if (!error) return { path: 'input', message: 'does not match the schema' };
  const segments = error.instancePath.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const missing = error.keyword === 'required' ? (error.params as { missingProperty?: string }).missingProperty : undefined;
  if (missing !== undefined) segments.push(missing);
  const path = segments.reduce((acc, s) => (/^\d+$/.test(s) ? `${acc}[${s}]` : `${acc}.${s}`), 'input');
  const message = missing !== undefined ? 'is required' : error.message ?? 'does not match the schema';
  return { path, message };
}
