import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

/** The compiled CLI (`npm test` runs `tsc -p .` first). */
export const CLI_JS = path.resolve(__dirname, '../../dist/src/cli/cli.js');

// Runs main() of the compiled CLI exactly as bin/drover.js does, without its rebuild check
// (another engineer editing src/ mid-run must not trigger a build inside a test).
const ENTRY = `require(${JSON.stringify(CLI_JS)}).main(process.argv).then((c) => { process.exitCode = c; }, (e) => { console.error(String(e)); process.exitCode = 1; })`;

/** The environment of a drover child process: only what the test names, plus PATH and HOME. */
export function cliEnv(vars: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn' };
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) env[k] = v;
  return env;
}

/** Result of a finished CLI command. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `drover <args>` to completion (killed after `timeoutMs`). */
export function runCli(args: string[], env: NodeJS.ProcessEnv, options: { timeoutMs?: number; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', ENTRY, 'drover', ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`drover ${args.join(' ')} did not finish in ${options.timeoutMs ?? 30_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A long-running drover process (server, worker, start). */
export interface DroverProcess {
  child: ChildProcess;
  /** The URL it printed (`… listening on http://…`), for servers. */
  url: string;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code once it exits. */
  exited: Promise<number | null>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/**
 * Spawns `drover <args>` and resolves once its stdout has a line matching
 * `ready` (default: the server's "listening on <url>" line; `null`: at once).
 * `detached` gives it a process group of its own, as a terminal does.
 */
export function spawnDrover(args: string[], env: NodeJS.ProcessEnv, options: { ready?: RegExp | null; timeoutMs?: number; detached?: boolean } = {}): Promise<DroverProcess> {
  const ready = options.ready === undefined ? /listening on (http:\/\/\S+)/ : options.ready;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', ENTRY, 'drover', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached });
    let stdout = '';
    let stderr = '';
    let settled = false;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const handle: DroverProcess = {
      child, url: '', exited,
      stdout: () => stdout,
      stderr: () => stderr,
      async stop(signal = 'SIGTERM', timeoutMs = 20_000) {
        if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
        child.kill(signal);
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      },
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`drover ${args.join(' ')} was not ready in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    if (!ready) {
      settled = true;
      clearTimeout(timer);
      resolve(handle);
    }
    child.stdout!.on('data', (d) => {
      stdout += d;
      const match = ready?.exec(stdout);
      if (match && !settled) {
        settled = true;
        clearTimeout(timer);
        handle.url = match[1] ?? '';
        resolve(handle);
      }
    });
    child.stderr!.on('data', (d) => { stderr += d; });
    void exited.then((code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`drover ${args.join(' ')} exited with ${code} before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}

/** fetch with JSON helpers for API tests. */
export async function http(url: string, init: RequestInit & { json?: unknown } = {}): Promise<{ status: number; headers: Headers; body: any; text: string }> {
  const headers = new Headers(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  const response = await fetch(url, { ...init, headers, body, redirect: 'manual' });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}
