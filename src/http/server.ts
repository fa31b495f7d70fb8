import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Drover } from '../drover';
import { silentLogger, type Logger } from '../telemetry/logger';
import { createApp, type AppOptions, type DroverApp } from './app';
import { isLoopbackAddress } from './security';

/** Options of `startServer`. */
export interface ServerOptions extends AppOptions {
  /** TCP port; 0 picks a free one. Default 3000. */
  port?: number;
  /** Listen address. Default `127.0.0.1`. */
  host?: string;
  /** How long `close()` lets open requests finish before cutting connections. Default 5 000 ms. */
  closeTimeoutMs?: number;
}

/** A listening HTTP server. */
export interface DroverServer {
  /** The port actually bound (useful with `port: 0`). */
  port: number;
  /** `http://host:port`. */
  url: string;
  http: Server;
  app: DroverApp;
  /** Stops accepting, lets open requests finish (up to the timeout), stops timers. Leaves the Drover open. */
  close(): Promise<void>;
}

/** Refuses to serve a database the migrations never ran on. */
export async function assertMigrated(drover: Drover): Promise<void> {
  if (!(await drover.isMigrated())) throw new Error('the database has no drover schema: run "drover migrate" first');
}

/** Starts the HTTP API, Bull Board, health and metrics on one port. */
export async function startServer(options: ServerOptions): Promise<DroverServer> {
  const logger = options.logger ?? silentLogger;
  const host = options.host ?? '127.0.0.1';
  if (options.auth === false && !isLoopbackAddress(host)) {
    throw new Error(`DROVER_AUTH=off serves anyone who can reach it: set HOST to a loopback address (127.0.0.1, ::1, localhost), not ${host}, or turn auth on`);
  }
  const droverApp = createApp(options);
  await droverApp.bullBoard.refresh().catch((err) => logger.warn({ err }, 'could not read the queue list; Bull Board shows "default" for now'));
  const http = await new Promise<Server>((resolve, reject) => {
    const server = droverApp.app.listen(options.port ?? 3000, host, (error?: Error) => (error ? reject(error) : resolve(server)));
    server.once('error', reject);
  }).catch((error: NodeJS.ErrnoException) => {
    droverApp.close();
    if (error.code === 'EADDRINUSE') throw new Error(`port ${options.port} on ${host} is already in use: set PORT to another port`);
    if (error.code === 'EADDRNOTAVAIL') throw new Error(`cannot listen on ${host}: set HOST to an address of this machine`);
    throw error;
  });
  http.keepAliveTimeout = 5_000;
  const port = (http.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    port,
    url: `http://${shownHost}:${port}`,
    http,
    app: droverApp,
    close() {
      closing ??= new Promise<void>((resolve) => {
        droverApp.close();
        const timer = setTimeout(() => http.closeAllConnections(), options.closeTimeoutMs ?? 5_000);
        timer.unref();
        http.close(() => {
          clearTimeout(timer);
          resolve();
        });
        http.closeIdleConnections();
      });
      return closing;
    },
  };
}
