import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics';

/** Options of `startMetricsServer`. */
export interface MetricsServerOptions {
  /** The metrics to serve. */
  metrics: Metrics;
  /** Port (0: any free port). */
  port: number;
  /** Listen address. Default `127.0.0.1`. */
  host?: string;
}

/** A running metrics listener. */
export interface MetricsServer {
  /** `http://host:port`. */
  url: string;
  close(): Promise<void>;
}

/**
 * A small HTTP listener for a process without the API server (a `drover
 * worker` pod): `GET /metrics` (Prometheus text, no auth, as the server's) and
 * `GET /health` (liveness: the process answers). Anything else is a 404.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { metrics } = options;
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET', 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: 'method_not_allowed', message: 'use GET' } }));
      return;
    }
    if (url === '/health') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
    } else if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics collection failed: ${err.message}`),
      );
    } else {
      res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: 'only /metrics and /health are served here' } }));
    }
  });
  // Nothing waits forever: a slow or idle client is dropped.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5000;
  server.keepAliveTimeout = 5000;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
