import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { migrate } from '../src/db/data-source';
import { EmbeddedPostgres, type EmbeddedPostgresOptions } from '../src/embedded/embedded-postgres';
import { freePort } from '../src/embedded/free-port';
import { RedisCluster } from '../test/harness/redis-cluster';
import { RedisServer } from '../test/harness/redis-server';
import { destroyNetworks, type Host, type HostNetwork } from './network';
import type { ChaosApiArgs } from './api-server';
import type { ChaosWorkerArgs } from './worker';
import { CHAOS_SCHEMA_SQL } from './workflows';

const TEMPLATE = 'chaos_template';
const ROOT = path.resolve(__dirname, '..', '..');

/** Every child process the suite started, so an exit on any path stops them. */
const children = new Set<ChildProcess>();

/** Kills every child still running (used on failure and Ctrl-C). */
export function killAllChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/**
 * Redis and Postgres of a chaos run, as real processes on loopback, with the
 * faults the scenarios inject: Redis restarted empty or paused, Postgres
 * stopped (fast shutdown) and started again on the same port. The Postgres
 * server log (across restarts) goes to `postgresLog`, for the deadlock check.
 */
export class Services {
  private paused = false;
  /** The Redis Cluster of the scenarios that need one (started on first use, stopped after the scenario). */
  cluster?: RedisCluster;
  private constructor(readonly dir: string, readonly redis: RedisServer, public postgres: EmbeddedPostgres, readonly adminUrl: string, readonly postgresLog: string) {}

  static async start(logDir: string): Promise<Services> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-chaos-'));
    fs.chmodSync(dir, 0o755);
    const redis = new RedisServer();
    const postgresLog = path.join(logDir, 'postgres.log');
    const postgres = new EmbeddedPostgres(Services.postgresOptions(dir, postgresLog));
    const services = new Services(dir, redis, postgres, '', postgresLog);
    active = services;
    const [, adminUrl] = await Promise.all([redis.start(), postgres.start()]);
    (services as { adminUrl: string }).adminUrl = adminUrl;
    await services.admin(`CREATE DATABASE ${TEMPLATE}`);
    await migrate(services.databaseUrl(TEMPLATE), { queueBackend: 'postgres' });
    return services;
  }

  private static postgresOptions(dir: string, logFile: string, port?: number): EmbeddedPostgresOptions {
    return {
      dataDir: path.join(dir, 'pg'), port, fsync: false, maxConnections: 400,
      onLog: (line) => fs.appendFileSync(logFile, `${line}\n`),
    };
  }

  /** Bytes of Postgres log written so far (a scenario's share of the log starts here). */
  postgresLogSize(): number {
    return fs.existsSync(this.postgresLog) ? fs.statSync(this.postgresLog).size : 0;
  }

  databaseUrl(name: string): string {
    const url = new URL(this.adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  }

  /** A fresh database for one scenario, copied from the migrated template, with the chaos tables. */
  async createDatabase(name: string): Promise<string> {
    await this.admin(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`);
    const client = new Client({ connectionString: this.databaseUrl(name) });
    await client.connect();
    try {
      await client.query(CHAOS_SCHEMA_SQL);
    } finally {
      await client.end();
    }
    return this.databaseUrl(name);
  }

  /** A fresh 3-master, 3-replica Redis Cluster on loopback, for one scenario. */
  async startCluster(): Promise<RedisCluster> {
    await this.stopCluster();
    const cluster = new RedisCluster();
    this.cluster = cluster;
    await cluster.start();
    return cluster;
  }

  async stopCluster(): Promise<void> {
    await this.cluster?.stop();
    this.cluster = undefined;
  }

  /** Fault: Redis stopped and started again with no persistence (empty), same port. */
  async restartRedis(): Promise<void> {
    await this.redis.restart();
  }

  /** Fault: Redis frozen with SIGSTOP for `ms`, then SIGCONT. */
  async pauseRedis(ms: number): Promise<void> {
    const pid = this.redis.pid!;
    process.kill(pid, 'SIGSTOP');
    this.paused = true;
    try {
      await new Promise((r) => setTimeout(r, ms));
    } finally {
      process.kill(pid, 'SIGCONT');
      this.paused = false;
    }
  }

  /** Fault: Postgres fast shutdown, down for `downMs`, then started on the same port and data. */
  async restartPostgres(downMs: number): Promise<void> {
    const port = this.postgres.port;
    await this.postgres.stop();
    await new Promise((r) => setTimeout(r, downMs));
    this.postgres = new EmbeddedPostgres(Services.postgresOptions(this.dir, this.postgresLog, port));
    await this.postgres.start();
  }

  async stop(): Promise<void> {
    if (this.paused && this.redis.pid) process.kill(this.redis.pid, 'SIGCONT');
    await Promise.allSettled([this.redis.stop(), this.postgres.stop(), this.stopCluster()]);
    this.redis.cleanup();
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (active === this) active = undefined;
  }

  private async admin(sql: string): Promise<void> {
    const client = new Client({ connectionString: this.adminUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  }
}

let active: Services | undefined;

/** Stops everything the suite started: children first, then the services. */
export async function stopEverything(): Promise<void> {
  killAllChildren();
  destroyNetworks();
  await active?.stop().catch(() => undefined);
}

/** Which API server the producers talk to. */
export type ApiKind = 'drover' | 'stand-in';

/**
 * The OS processes of one scenario: worker processes and the API server.
 * Workers that fail to start (a replacement started mid-fault) are started
 * again, a bounded number of times.
 */
export class Fleet {
  readonly workers = new Map<string, ChildProcess>();
  /** The network host of each worker, when the workers live on hosts of their own. */
  readonly hostOf = new Map<string, Host>();
  private api?: ChildProcess;
  apiPort = 0;
  private seq = 0;
  private restarts = 0;
  private stopping = false;
  readonly rssPeakMb = { workers: 0, api: 0 };

  constructor(
    private readonly o: {
      databaseUrl: string; redisUrl?: string; namespace: string; concurrency: number; gracePeriodMs: number; logDir: string; api: ApiKind;
      /** Workers on hosts of their own (network namespaces), one per host in turn; default: on loopback. */
      network?: HostNetwork;
    },
  ) {}

  get apiUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  /** Starts a worker process; resolves once it consumes (or exits). */
  startWorker(): Promise<void> {
    const name = `${this.o.namespace}-w${++this.seq}`;
    const network = this.o.network;
    const host = network?.hosts[(this.seq - 1) % network.hosts.length];
    const reach = (url: string) => (network ? network.fromHost(url) : url);
    const args: ChaosWorkerArgs = {
      name, databaseUrl: reach(this.o.databaseUrl), redisUrl: this.o.redisUrl && reach(this.o.redisUrl), namespace: this.o.namespace,
      concurrency: this.o.concurrency, gracePeriodMs: this.o.gracePeriodMs,
    };
    const child = this.spawnNode([path.join(__dirname, 'worker.js'), JSON.stringify(args)], `${name}.log`, undefined, host?.ns);
    if (host) this.hostOf.set(name, host);
    this.workers.set(name, child);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 30_000);
      child.on('message', () => { clearTimeout(timer); resolve(); });
      child.once('exit', (code) => {
        clearTimeout(timer);
        this.workers.delete(name);
        resolve();
        if (code === 3 && !this.stopping && this.restarts++ < 50) setTimeout(() => { if (!this.stopping) void this.startWorker(); }, 500);
      });
    });
  }

  /** Sends `signal` to a random worker; returns its name. */
  signalRandomWorker(signal: NodeJS.Signals): string | undefined {
    const names = [...this.workers.keys()];
    if (names.length === 0) return undefined;
    const name = names[Math.floor(Math.random() * names.length)];
    const child = this.workers.get(name)!;
    child.kill(signal);
    if (signal === 'SIGKILL') this.workers.delete(name);
    return name;
  }

  /** Starts the API server and waits for /health. */
  async startApi(): Promise<void> {
    if (!this.apiPort) this.apiPort = await freePort();
    if (this.o.api === 'drover') {
      // dist/src/cli/cli.js directly: bin/drover.js would rebuild when a source is newer, mid-scenario.
      const cli = path.join(ROOT, 'dist', 'src', 'cli', 'cli.js');
      const code = `require(${JSON.stringify(cli)}).main(['node', 'drover', 'server']).then((c) => { process.exitCode = c; })`;
      this.api = this.spawnNode(['-e', code], 'api.log', {
        DATABASE_URL: this.o.databaseUrl, REDIS_URL: this.o.redisUrl ?? '', PORT: String(this.apiPort), HOST: '127.0.0.1',
        DROVER_AUTH: 'off', DROVER_NAMESPACE: this.o.namespace, LOG_LEVEL: 'warn',
      });
    } else {
      const args: ChaosApiArgs = { databaseUrl: this.o.databaseUrl, redisUrl: this.o.redisUrl, namespace: this.o.namespace, port: this.apiPort };
      this.api = this.spawnNode([path.join(__dirname, 'api-server.js'), JSON.stringify(args)], 'api.log');
    }
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${this.apiUrl}/health`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (this.api.exitCode !== null) throw new Error(`API server exited at start (see ${this.o.logDir}/api.log)`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('API server did not answer /health within 30 s');
  }

  /** Fault: SIGKILL of the API server. */
  killApi(): void {
    this.api?.kill('SIGKILL');
  }

  /** Samples the RSS of the workers (sum of the largest) and the API server; keeps the peaks. */
  sampleRss(): { workersMb: number[]; apiMb: number } {
    const workersMb = [...this.workers.values()].map((c) => rssMb(c.pid));
    const apiMb = rssMb(this.api?.pid);
    this.rssPeakMb.workers = Math.max(this.rssPeakMb.workers, ...workersMb, 0);
    this.rssPeakMb.api = Math.max(this.rssPeakMb.api, apiMb);
    return { workersMb, apiMb };
  }

  /** Graceful stop of everything (SIGTERM, then SIGKILL past the grace period). */
  async stop(): Promise<void> {
    this.stopping = true;
    const all = [...this.workers.values(), ...(this.api ? [this.api] : [])].filter((c) => c.exitCode === null && c.signalCode === null);
    await Promise.all(all.map((child) => new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), this.o.gracePeriodMs + 5000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.kill('SIGTERM');
    })));
  }

  /** Spawns node (in the network namespace `ns` when given: `ip netns exec` execs it, same pid). */
  private spawnNode(argv: string[], logName: string, env?: Record<string, string>, ns?: string): ChildProcess {
    const log = fs.openSync(path.join(this.o.logDir, logName), 'a');
    const [command, args] = ns ? ['ip', ['netns', 'exec', ns, process.execPath, ...argv]] : [process.execPath, argv];
    const child = spawn(command, args, {
      stdio: ['ignore', log, log, 'ipc'], cwd: ROOT, env: env ? { ...process.env, ...env } : process.env,
    });
    fs.closeSync(log);
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  }
}

function rssMb(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : 0;
  } catch {
    return 0;
  }
}
