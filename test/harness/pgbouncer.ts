import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, isPortOpen } from '../../src/embedded/free-port';

/** Options of a throwaway PgBouncer. */
export interface PgBouncerOptions {
  /** The Postgres server behind it (any database URL of it: host, port, user and password are used). */
  serverUrl: string;
  /** `transaction` (default), `session` or `statement`. */
  poolMode?: 'transaction' | 'session' | 'statement';
  /** Server connections per database and user. Default 10. */
  poolSize?: number;
}

/**
 * Debian's `pgbouncer` on a free loopback port in front of a Postgres server,
 * every database passed through (`* = host=… port=…`), transaction pooling by
 * default. PgBouncer refuses to run as root, so as root it runs as `postgres`
 * (`-u postgres`). Its admin console (`SHOW STATS`) is open to that user.
 */
export class PgBouncer {
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-pgbouncer-'));
  private child?: ChildProcess;
  port = 0;
  private readonly server: URL;

  constructor(private readonly options: PgBouncerOptions) {
    this.server = new URL(options.serverUrl);
  }

  /** The URL of `database` through PgBouncer (same user and password as the server's URL). */
  url(database: string): string {
    const url = new URL(this.server.toString());
    url.host = `127.0.0.1:${this.port}`;
    url.pathname = `/${database}`;
    return url.toString();
  }

  async start(): Promise<void> {
    const bin = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).stdout.trim();
    if (!bin) throw new Error('pgbouncer is not installed: install it (Debian/Ubuntu: sudo apt-get install -y pgbouncer)');
    this.port = await freePort();
    const user = decodeURIComponent(this.server.username || 'postgres');
    const password = decodeURIComponent(this.server.password);
    const ini = path.join(this.dir, 'pgbouncer.ini');
    fs.writeFileSync(path.join(this.dir, 'users.txt'), `"${user}" "${password.replace(/"/g, '""')}"\n`, { mode: 0o600 });
    fs.writeFileSync(ini, [
      '[databases]',
      `* = host=${this.server.hostname} port=${this.server.port || 5432}`,
      '[pgbouncer]',
      `listen_addr = 127.0.0.1`,
      `listen_port = ${this.port}`,
      `unix_socket_dir =`,
      `auth_type = plain`,
      `auth_file = ${path.join(this.dir, 'users.txt')}`,
      `admin_users = ${user}`,
      `stats_users = ${user}`,
      `pool_mode = ${this.options.poolMode ?? 'transaction'}`,
      `default_pool_size = ${this.options.poolSize ?? 10}`,
      `max_client_conn = 500`,
      `max_db_connections = 0`,
      `ignore_startup_parameters = extra_float_digits`,
      `server_reset_query =`,
      `logfile = ${path.join(this.dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(this.dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'));
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (isRoot) {
      fs.chmodSync(this.dir, 0o755);
      spawnSync('chown', ['-R', 'postgres:', this.dir]);
    }
    const child = spawn(bin, [...(isRoot ? ['-u', 'postgres'] : []), ini], { stdio: 'ignore' });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await isPortOpen(this.port))) {
      if (child.exitCode !== null) throw new Error(`pgbouncer exited at start: ${this.log().trim().split('\n').pop()}`);
      if (Date.now() > deadline) throw new Error('pgbouncer did not listen within 10 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Its log so far. */
  log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'pgbouncer.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
