import { spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { HostNetwork } from '../chaos/network';
import { freePort } from '../src/embedded/free-port';

// The chaos suite's network hosts (network namespaces, veth pairs, a bridge): root only, as in CI.
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasIp = spawnSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).status === 0;

/** From inside the host's namespace: does `address:port` answer "pong" within 1.5 s? (Async: the relay runs in this process.) */
function reachFromHost(ns: string, address: string, port: number): Promise<boolean> {
  const code = `const s = require('net').connect(${port}, '${address}'); setTimeout(() => process.exit(2), 1500);
    s.on('data', (d) => process.exit(String(d) === 'pong' ? 0 : 3)); s.on('error', () => process.exit(4));`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (status) => resolve(status === 0)));
}

(isRoot && hasIp ? describe : describe.skip)('chaos network hosts', () => {
  it('reach loopback services through the bridge, are cut off by a partition and healed, and leave nothing behind', async () => {
    const port = await freePort();
    const service = net.createServer((s) => s.end('pong'));
    await new Promise<void>((r) => service.listen(port, '127.0.0.1', () => r()));
    const network = HostNetwork.create(2);
    try {
      await network.relay(port);
      const [a, b] = network.hosts;
      expect(await reachFromHost(a.ns, network.gateway, port)).toBe(true);
      expect(await reachFromHost(b.ns, network.gateway, port)).toBe(true);
      // Loopback inside a host is its own: the service is not there.
      expect(await reachFromHost(a.ns, '127.0.0.1', port)).toBe(false);
      network.cut(a);
      expect(await reachFromHost(a.ns, network.gateway, port)).toBe(false);
      expect(await reachFromHost(b.ns, network.gateway, port)).toBe(true);
      network.heal(a);
      expect(await reachFromHost(a.ns, network.gateway, port)).toBe(true);
    } finally {
      network.destroy();
      service.close();
    }
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    for (const host of network.hosts) expect(left).not.toContain(host.ns);
  });
});
