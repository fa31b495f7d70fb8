import pino, { type Logger } from 'pino';
import type { LogLevel } from '../config';

export type { Logger };

/**
 * Structured JSON logs. Secrets never reach them: authorization headers and
 * anything named like a key or password are redacted.
 */
export function createLogger(level: LogLevel = 'info', name = 'drover'): Logger {
  return pino({
    name,
    level,
    redact: { paths: ['req.headers.authorization', '*.password', '*.apiKey', '*.key', 'key', 'apiKey'], censor: '[redacted]' },
  });
}

/** A logger that writes nothing (library default). */
export const silentLogger: Logger = pino({ level: 'silent' });
