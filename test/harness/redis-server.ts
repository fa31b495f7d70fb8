import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, isPortOpen } from '../../src/embedded/free-port';

/** Options of a throwaway Redis server (tests, benchmarks, chaos runs). */
export interface RedisServerOptions {
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Install `redis-server` with apt-get when missing and running as root on Debian. Default true. */
  autoInstall?: boolean;
}

/**
 * A `redis-server` child process on loopback without persistence. Restarting
 * it gives an empty Redis on the same port, which is what the chaos and
 * reconciler tests want.
 */
export class RedisServer {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  port = 0;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-redis-'));

  constructor(private readonly options: RedisServerOptions = {}) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<string> {
    const bin = findRedisServer(this.options.autoInstall ?? true);
    if (!this.port) this.port = this.options.port || (await freePort());
    const child = spawn(bin, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--maxmemory-policy', 'noeviction',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let output = '';
    child.stdout?.on('data', (d: Buffer) => { if (output.length < 8192) output += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { if (output.length < 8192) output += d.toString(); });
    const deadline = Date.now() + 10_000;
    while (!(await isPortOpen(this.port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited at start: ${output.trim().split('\n').pop()}`);
      if (Date.now() > deadline) throw new Error('redis-server did not listen within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.url;
  }

  /** Stops the server (SIGTERM, then SIGKILL). Its data is lost: there is no persistence. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stop and start again on the same port: an empty Redis. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Removes the scratch directory after stop. */
  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Finds `redis-server`, installing Debian's package when allowed; otherwise one clear line. */
export function findRedisServer(autoInstall = true): string {
  const which = () => {
    const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : '';
  };
  let bin = which();
  if (bin) return bin;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (autoInstall && isRoot && fs.existsSync('/usr/bin/apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', '-q', 'redis-server'], { stdio: 'ignore', env });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-q'], { stdio: 'ignore', env });
      r = spawnSync('apt-get', ['install', '-y', '-q', 'redis-server'], { stdio: 'ignore', env });
    }
    bin = which();
    if (bin) return bin;
  }
  throw new Error('redis-server is not installed: install it (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis)');
}
