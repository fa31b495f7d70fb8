import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';

/** One network host of the suite: a network namespace joined to the services' bridge by a veth pair. */
export interface Host {
  /** The namespace (`ip netns exec <ns> …`). */
  ns: string;
  /** The veth end on the services' side (set down to cut the host off). */
  link: string;
  /** The host's address. */
  address: string;
  /** Whether it is cut off now. */
  cut: boolean;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/**
 * Network hosts for chaos workers, made by the suite itself (root only): a
 * bridge with the services' address (`10.213.N.1/24`, a private range no
 * interface of the machine uses) and, per host, a network namespace with a
 * veth pair into the bridge (`10.213.N.10+i`). Redis and Postgres listen on
 * loopback, so the bridge address forwards to them (a TCP relay per port in
 * this process). A partition is the host's veth end set down: its packets
 * go nowhere (no reset), as when a switch port or a route dies, until it is
 * set up again.
 */
export class HostNetwork {
  readonly hosts: Host[] = [];
  private readonly relays: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly bridge: string;

  private constructor(private readonly tag: string, readonly gateway: string, private readonly prefix: string) {
    this.bridge = `dv${tag}b`;
  }

  /** Makes the bridge and `count` hosts. Throws with one line when not root or `ip` fails. */
  static create(count: number): HostNetwork {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new Error('network hosts need root (ip netns add)');
    const used = spawnSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }).stdout;
    let octet = 0;
    for (let i = 0; i < 50 && !octet; i++) {
      const candidate = 1 + Math.floor(Math.random() * 254);
      if (!used.includes(`10.213.${candidate}.`)) octet = candidate;
    }
    if (!octet) throw new Error('no free 10.213.N.0/24 for the chaos hosts');
    const prefix = `10.213.${octet}`;
    const network = new HostNetwork(randomBytes(2).toString('hex'), `${prefix}.1`, prefix);
    active.add(network);
    try {
      ip('link', 'add', network.bridge, 'type', 'bridge');
      ip('addr', 'add', `${network.gateway}/24`, 'dev', network.bridge);
      ip('link', 'set', network.bridge, 'up');
      for (let i = 0; i < count; i++) network.addHost();
    } catch (error) {
      network.destroy();
      throw error;
    }
    return network;
  }

  private addHost(): void {
    const i = this.hosts.length + 1;
    const host: Host = { ns: `dv${this.tag}h${i}`, link: `dv${this.tag}v${i}`, address: `${this.prefix}.${9 + i}`, cut: false };
    const peer = `dv${this.tag}p${i}`;
    ip('netns', 'add', host.ns);
    this.hosts.push(host);
    ip('link', 'add', host.link, 'type', 'veth', 'peer', 'name', peer);
    ip('link', 'set', peer, 'netns', host.ns);
    ip('link', 'set', host.link, 'master', this.bridge);
    ip('link', 'set', host.link, 'up');
    ip('-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', peer);
    ip('-n', host.ns, 'link', 'set', peer, 'up');
    ip('-n', host.ns, 'link', 'set', 'lo', 'up');
  }

  /** Relays `gateway:port` to `127.0.0.1:port`, so hosts reach a loopback service. */
  async relay(port: number): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.gateway, () => resolve());
    });
    this.relays.push(server);
  }

  /** The URL with its loopback host replaced by the gateway (what a host connects to). */
  fromHost(url: string): string {
    const u = new URL(url);
    if (u.hostname === '127.0.0.1' || u.hostname === 'localhost') u.hostname = this.gateway;
    return u.toString();
  }

  /** Fault: the host's link is set down (nothing in or out) until `heal`. */
  cut(host: Host): void {
    ip('link', 'set', host.link, 'down');
    host.cut = true;
  }

  /** Ends a partition. */
  heal(host: Host): void {
    ip('link', 'set', host.link, 'up');
    host.cut = false;
  }

  /** Removes the relays, the hosts and the bridge (also the ones a failed create left). */
  destroy(): void {
    for (const s of this.sockets) s.destroy();
    for (const r of this.relays) r.close();
    for (const host of this.hosts) {
      spawnSync('ip', ['link', 'del', host.link], { stdio: 'ignore' });
      spawnSync('ip', ['netns', 'del', host.ns], { stdio: 'ignore' });
    }
    spawnSync('ip', ['link', 'del', this.bridge], { stdio: 'ignore' });
    active.delete(this);
  }
}

const active = new Set<HostNetwork>();

/** Removes every network the suite made (on exit, failure or Ctrl-C). */
export function destroyNetworks(): void {
  for (const network of [...active]) network.destroy();
}
