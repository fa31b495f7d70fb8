import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** The last line of the banner of `drover start`, with its URL. */
export const READY = /try it: .*(http:\/\/\S+)\/api\/runs/;

/** Every process whose command line names this data dir (drover, postgres). */
export function processesOf(dir: string): string[] {
  const r = spawnSync('pgrep', ['-f', dir], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** Postgres processes serving this data dir. */
export function postgresOf(dir: string): string[] {
  const r = spawnSync('pgrep', ['-f', `postgres -D ${path.join(dir, 'pg')}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

/** What a log line must never be for an expected condition: a stack trace or a JSON dump of one. */
export function expectNoStackTraces(text: string): void {
  expect(text).not.toMatch(/\n\s+at \S/);
  expect(text).not.toMatch(/"stack"/);
  expect(text).not.toMatch(/Unhandled 'error' event/);
}
