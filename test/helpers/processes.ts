import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

/** The compiled form of a TypeScript file (npm test compiles with `tsc -p .` first). */
export function compiled(tsPath: string): string {
  const js = path.join(ROOT, 'dist', path.relative(ROOT, tsPath)).replace(/\.ts$/, '.js');
  if (!fs.existsSync(js) || fs.statSync(js).mtimeMs < fs.statSync(tsPath).mtimeMs) {
    throw new Error(`${path.relative(ROOT, js)} is missing or stale: run "npx tsc -p ." (npm test does)`);
  }
  return js;
}

/** A child process started for a test; `stop()` kills it if still alive. */
export interface Child {
  process: ChildProcess;
  output(): string;
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `node script` with env, collecting its output. */
export function startNode(script: string, env: NodeJS.ProcessEnv, args: string[] = []): Child {
  const child = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => { out += d.toString(); });
  child.stderr!.on('data', (d) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    process: child,
    output: () => out,
    exited,
    async waitFor(text, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      const matches = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      while (!matches()) {
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before printing ${text}: ${out.slice(-500)}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${text}: ${out.slice(-500)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        await exited;
      }
    },
  };
}
