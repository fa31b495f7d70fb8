/**
 * Checks that a value survives JSON unchanged in meaning: no functions,
 * symbols, BigInt, cycles, or non-plain objects that JSON would drop or mangle.
 * Returns a path and reason for the first offence, or undefined when fine.
 */
/** Deepest nesting accepted in inputs, outputs and request bodies (deeper values would exhaust the stack). */
export const MAX_JSON_DEPTH = 64;

/** One day in ms: the unit of the delay and timeout bounds. */
export const DAY_MS = 86_400_000;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Whether a string is a well-formed id (runs, steps, keys); others are simply not found. */
export const isUuid = (value: string): boolean => UUID.test(value);

/** A timestamp column as the API shows it (ISO 8601, UTC), or null. */
export const isoTime = (value: Date | string | null | undefined): string | null =>
  value === null || value === undefined ? null : new Date(value).toISOString();

export function findNonJson(value: unknown, path = '$', seen: Set<object> = new Set()): string | undefined {
  switch (typeof value) {
    case 'string':
      return badString(value) ? `${path} ${badString(value)}` : undefined;
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value} (not a finite number)`;
    case 'undefined':
      return path === '$' ? undefined : `${path} is undefined`;
    case 'bigint':
      return `${path} is a BigInt`;
    case 'function':
      return `${path} is a function`;
    case 'symbol':
      return `${path} is a symbol`;
  }
  if (value === null) return undefined;
  const obj = value as object;
  if (seen.has(obj)) return `${path} is a circular reference`;
  if (seen.size >= MAX_JSON_DEPTH) return `${path} is nested deeper than ${MAX_JSON_DEPTH} levels`;
  if (obj instanceof Date) return undefined;
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      for (let i = 0; i < obj.length; i++) {
        const bad = findNonJson(obj[i], `${path}[${i}]`, seen);
        if (bad) return bad;
      }
      return undefined;
    }
    const proto = Object.getPrototypeOf(obj);
    if (!isPlainPrototype(proto)) {
      return `${path} is a ${proto?.constructor?.name ?? 'non-plain'} object`;
    }
    for (const [key, v] of Object.entries(obj)) {
      if (badString(key)) return `${path} has a key that ${badString(key)}`;
      if (v === undefined) continue;
      const bad = findNonJson(v, `${path}.${key}`, seen);
      if (bad) return bad;
    }
    return undefined;
  } finally {
    seen.delete(obj);
  }
}

/** Whether a value is a plain JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && isPlainPrototype(Object.getPrototypeOf(value));
}

/**
 * `Object.prototype` of any realm, or null: a user module evaluated in another
 * context (a test runner's, a loader's) makes plain objects with its own.
 */
function isPlainPrototype(proto: unknown): boolean {
  if (proto === null || proto === Object.prototype) return true;
  return typeof proto === 'object' && Object.getPrototypeOf(proto) === null
    && typeof (proto as { constructor?: unknown }).constructor === 'function' && (proto as { constructor: { name: string } }).constructor.name === 'Object';
}

/**
 * Postgres text and jsonb refuse NUL characters and unpaired UTF-16
 * surrogates; catching them here turns a would-be 500 into a clear 400.
 */
export function badString(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character (\\u0000)';
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value)) return 'contains an unpaired UTF-16 surrogate';
  return undefined;
}
