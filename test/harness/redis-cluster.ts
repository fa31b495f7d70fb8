import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, isPortOpen } from '../../src/embedded/free-port';
import { findRedisServer } from './redis-server';

/** Options of a throwaway Redis Cluster. */
export interface RedisClusterOptions {
  /** Masters (each gets `replicas` replicas). Default 3. */
  masters?: number;
  /** Replicas per master. Default 1. */
  replicas?: number;
  /** Address every node binds to and announces. Default `127.0.0.1`. */
  host?: string;
  /** How long a master may be unreachable before its replica takes over, in ms. Default 2000. */
  nodeTimeoutMs?: number;
}

/** One node of the cluster. */
export interface ClusterNodeInfo {
  port: number;
  pid?: number;
  /** `master` or `replica`, as the node itself says now (undefined when it does not answer). */
  role?: 'master' | 'replica';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A Redis Cluster of `redis-server --cluster-enabled yes` processes on loopback
 * (3 masters and 3 replicas by default), made with `redis-cli --cluster create
 * --cluster-replicas 1`, without persistence. Each node also needs its bus port
 * (its port + 10000) free, so ports are picked in pairs.
 */
export class RedisCluster {
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-redis-cluster-'));
  private readonly nodes = new Map<number, ChildProcess>();
  readonly host: string;
  ports: number[] = [];

  constructor(private readonly options: RedisClusterOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
  }

  /** `redis+cluster://` URL with every node as a seed. */
  get url(): string {
    return `redis+cluster://${this.ports.map((p) => `${this.host}:${p}`).join(',')}`;
  }

  /** Starts the nodes, joins them into a cluster and waits until it is `ok` on every node (at most 60 s). */
  async start(): Promise<string> {
    const masters = this.options.masters ?? 3;
    const replicas = this.options.replicas ?? 1;
    const count = masters * (1 + replicas);
    while (this.ports.length < count) {
      const port = await freePort(this.host);
      if (port > 55_000 || this.ports.includes(port) || await isPortOpen(port + 10_000, this.host)) continue;
      this.ports.push(port);
    }
    await Promise.all(this.ports.map((port) => this.startNode(port)));
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...this.ports.map((p) => `${this.host}:${p}`),
      '--cluster-replicas', String(replicas), '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${(created.stdout + created.stderr).trim().split('\n').slice(-3).join(' ')}`);
    await this.waitUntilOk(60_000);
    return this.url;
  }

  /**
   * Waits until every running node says `cluster_state:ok` and knows `masters`
   * masters with slots, and every replica's link to its master is up (a replica
   * that never synced cannot take over).
   */
  async waitUntilOk(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const masters = this.options.masters ?? 3;
    for (;;) {
      const running = [...this.nodes.keys()];
      const ok = running.every((port) => {
        const info = this.cli(port, 'cluster', 'info');
        const m = /cluster_size:(\d+)/.exec(info);
        const replication = this.cli(port, 'info', 'replication');
        return /cluster_state:ok/.test(info) && m !== null && Number(m[1]) === masters
          && (!/role:slave/.test(replication) || /master_link_status:up/.test(replication));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`the Redis Cluster did not reach cluster_state:ok within ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  /** Each running node's port, pid and role. */
  describe(): ClusterNodeInfo[] {
    return this.ports.map((port) => {
      const child = this.nodes.get(port);
      if (!child) return { port };
      const role = /role:(master|slave)/.exec(this.cli(port, 'info', 'replication'))?.[1];
      return { port, pid: child.pid, role: role === 'slave' ? 'replica' : role === 'master' ? 'master' : undefined };
    });
  }

  /** The port of the master serving a key's slot. */
  masterOf(key: string): number {
    const slot = Number(this.cli(this.ports.find((p) => this.nodes.has(p))!, 'cluster', 'keyslot', key).trim());
    for (const line of this.cli(this.ports.find((p) => this.nodes.has(p))!, 'cluster', 'nodes').split('\n')) {
      const f = line.split(' ');
      if (!f[2]?.includes('master') || f[2].includes('fail')) continue;
      for (const range of f.slice(8)) {
        const [a, b] = range.split('-').map(Number);
        if (slot >= a && slot <= (b ?? a)) return Number(f[1].split(':')[1].split('@')[0]);
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /**
   * Fault: SIGKILL of the master on `port`. Its replica is promoted by the
   * cluster itself once the node timeout passes; resolves when the cluster is
   * `ok` again with a new master (at most 30 s). The killed node stays down.
   */
  async killMaster(port: number): Promise<{ promoted: number; ms: number }> {
    const child = this.nodes.get(port);
    if (!child) throw new Error(`no node on port ${port}`);
    const replicaOf = this.replicasOf(port);
    const t0 = Date.now();
    child.kill('SIGKILL');
    this.nodes.delete(port);
    await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    const deadline = t0 + 30_000;
    for (;;) {
      const promoted = replicaOf.find((p) => this.nodes.has(p) && /role:master/.test(this.cli(p, 'info', 'replication')));
      if (promoted !== undefined) {
        await this.waitUntilOk(Math.max(1000, deadline - Date.now()));
        return { promoted, ms: Date.now() - t0 };
      }
      if (Date.now() > deadline) throw new Error(`no replica of ${port} was promoted within 30 s`);
      await sleep(100);
    }
  }

  /**
   * Starts a killed node again on its port and files: it rejoins the cluster
   * as a replica of the master that took its slots. Resolves once the cluster
   * is `ok` with every replica in sync (at most 30 s).
   */
  async restartNode(port: number): Promise<void> {
    if (this.nodes.has(port)) return;
    await this.startNode(port);
    await this.waitUntilOk(30_000);
  }

  /** A master that has a live replica (so killing it fails over), preferring the one serving `key`'s slot. */
  masterWithReplica(key: string): number | undefined {
    const preferred = this.masterOf(key);
    const masters = this.describe().filter((n) => n.role === 'master').map((n) => n.port);
    const candidates = [preferred, ...masters.filter((p) => p !== preferred)];
    return candidates.find((p) => this.replicasOf(p).some((r) => this.nodes.has(r)));
  }

  /** Stops every node and removes their files. */
  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => { clearTimeout(timer); resolve(); });
      child.kill('SIGTERM');
    })));
    this.nodes.clear();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private replicasOf(port: number): number[] {
    const nodes = this.cli(port, 'cluster', 'nodes').split('\n').map((l) => l.split(' '));
    const id = nodes.find((f) => f[2]?.includes('myself'))?.[0];
    return nodes.filter((f) => f[3] === id).map((f) => Number(f[1].split(':')[1].split('@')[0]));
  }

  private cli(port: number, ...args: string[]): string {
    const r = spawnSync('redis-cli', ['-h', this.host, '-p', String(port), ...args], { encoding: 'utf8', timeout: 5000 });
    return r.status === 0 ? r.stdout : '';
  }

  private async startNode(port: number): Promise<void> {
    const dir = path.join(this.dir, String(port));
    fs.mkdirSync(dir, { recursive: true });
    const child = spawn(findRedisServer(), [
      '--port', String(port), '--bind', this.host, '--save', '', '--appendonly', 'no', '--dir', dir,
      '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'),
      '--cluster-node-timeout', String(this.options.nodeTimeoutMs ?? 2000), '--cluster-announce-ip', this.host,
      '--maxmemory-policy', 'noeviction', '--repl-diskless-sync-delay', '0',
    ], { stdio: 'ignore' });
    this.nodes.set(port, child);
    const deadline = Date.now() + 10_000;
    while (!(await isPortOpen(port, this.host))) {
      if (child.exitCode !== null) throw new Error(`redis-server (cluster node on ${port}) exited at start`);
      if (Date.now() > deadline) throw new Error(`redis-server (cluster node on ${port}) did not listen within 10 s`);
      await sleep(20);
    }
  }
}
