import { spawn } from 'node:child_process';
import { NonRetryableError } from '../../src/errors';

/** What a finished command left: its exit code and its last lines (for the error). */
export interface ShellResult { exitCode: number; lines: number; tail: string[] }

/**
 * Runs `sh -c command` in `cwd`, handing each line of its stdout and stderr to
 * `log` as it arrives (drover's `ctx.log`: the step's log lines), and kills it
 * when `signal` aborts (a cancel or the step's timeout).
 */
export function runShell(command: string, options: { cwd: string; env?: Record<string, string>; log: (line: string) => void; signal: AbortSignal }): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', command], { cwd: options.cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
    const tail: string[] = [];
    let lines = 0;
    const reader = (prefix: string) => {
      let rest = '';
      return (chunk: Buffer) => {
        const parts = (rest + chunk.toString('utf8')).split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) emit(prefix + line);
      };
    };
    const emit = (line: string) => {
      lines++;
      options.log(line);
      tail.push(line);
      if (tail.length > 5) tail.shift();
    };
    child.stdout.on('data', reader(''));
    child.stderr.on('data', reader('stderr: '));
    child.on('error', reject);
    child.on('close', (code, sig) => resolve({ exitCode: code ?? (sig ? 128 : 1), lines, tail }));
  });
}

/** Runs a CI job's command; a non-zero exit fails the step for good (a build does not get better by retrying), naming the job. */
export async function runJob(job: string, command: string, options: Parameters<typeof runShell>[1]): Promise<{ job: string; exitCode: 0; lines: number }> {
  options.log(`$ ${command}`);
  const result = await runShell(command, options);
  if (result.exitCode !== 0) {
    throw new NonRetryableError(`job "${job}" exited with code ${result.exitCode}: ${result.tail.at(-1) ?? '(no output)'}`, { details: { job, exitCode: result.exitCode, tail: result.tail } });
  }
  return { job, exitCode: 0, lines: result.lines };
}
