/**
 * Transient infrastructure failures, retried from one table in one wrapper.
 * Postgres SQLSTATEs: serialization failure, deadlock, admin/crash shutdown,
 * cannot connect now, connection exceptions, too many connections.
 */
export const RETRYABLE_PG_CODES: ReadonlySet<string> = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000', '08001', '08003', '08004', '08006', // connection exceptions
  '53300', // too_many_connections
  '55006', // object_in_use (template busy)
]);

/** Node socket error codes that mean "the server went away, try again". */
export const RETRYABLE_NET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTCONN', 'EAI_AGAIN',
]);

const RETRYABLE_MESSAGES = [
  /Connection terminated/i,
  /connection error/i,
  /timeout exceeded when trying to connect/i,
  /Client was closed and is not queryable/i,
  /Connection is closed/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /terminating connection/i,
  /Stream isn't writeable/i,
];

/** Whether an error is a transient infrastructure failure worth retrying. */
export function isTransientError(error: unknown): boolean {
  if (!error || typeof error !== 'object') return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (RETRYABLE_PG_CODES.has(code) || RETRYABLE_NET_CODES.has(code))) return true;
  const message = (error as { message?: unknown }).message;
  return typeof message === 'string' && RETRYABLE_MESSAGES.some((re) => re.test(message));
}

/** Options of `withInfraRetry`. */
export interface InfraRetryOptions {
  /** Give up after this long, in ms. Default 60 000. */
  maxElapsedMs?: number;
  /** First backoff, doubled each time up to `maxDelayMs`. Default 50. */
  initialDelayMs?: number;
  /** Default 2 000. */
  maxDelayMs?: number;
  /** Called before each retry (for logs and metrics). */
  onRetry?: (error: unknown, attempt: number) => void;
  /** Stop retrying early (e.g. shutting down). */
  signal?: AbortSignal;
}

/**
 * Runs `operation`, retrying transient infrastructure errors with exponential
 * backoff and jitter. Other errors, and the last transient one, are thrown.
 */
export async function withInfraRetry<T>(operation: () => Promise<T>, options: InfraRetryOptions = {}): Promise<T> {
  const started = Date.now();
  const maxElapsed = options.maxElapsedMs ?? 60_000;
  let delay = options.initialDelayMs ?? 50;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!isTransientError(error) || Date.now() - started + delay > maxElapsed || options.signal?.aborted) throw error;
      options.onRetry?.(error, attempt);
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, options.maxDelayMs ?? 2000);
    }
  }
}
