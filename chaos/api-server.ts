import * as http from 'node:http';
import { Drover } from '../src/drover';
import { DroverError } from '../src/errors';
import { STATUS_OF_CODE } from '../src/http/errors';

/** What the orchestrator passes the stand-in API server (as JSON in argv[2]). */
export interface ChaosApiArgs {
  databaseUrl: string;
  redisUrl?: string;
  namespace: string;
  port: number;
}

/**
 * A stand-in for `drover server` while it does not exist: the producer calls of
 * CONTRACT.md section 3 (create, get, cancel, retry, health) over plain
 * node:http, on the same Drover facade the real server uses.
 */
async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as ChaosApiArgs;
  const drover = await Drover.connect({ databaseUrl: args.databaseUrl, redisUrl: args.redisUrl, namespace: args.namespace });
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    let raw = '';
    req.on('data', (chunk: Buffer) => { raw += chunk.toString(); });
    req.on('end', () => {
      const url = (req.url ?? '').split('?')[0];
      const handle = async (): Promise<void> => {
        if (req.method === 'GET' && url === '/health') return send(200, { status: 'ok' });
        if (req.method === 'POST' && url === '/api/runs') {
          const { run, created } = await drover.submitRun(JSON.parse(raw || '{}'), { actor: 'api:chaos' });
          return send(created ? 201 : 200, run);
        }
        const m = /^\/api\/runs\/([^/]+)(?:\/(cancel|retry))?$/.exec(url);
        if (m && req.method === 'GET' && !m[2]) return send(200, await drover.getRun(m[1]));
        if (m && req.method === 'POST' && m[2] === 'cancel') return send(200, await drover.cancelRun(m[1], { actor: 'api:chaos' }));
        if (m && req.method === 'POST' && m[2] === 'retry') return send(200, await drover.retryRun(m[1], { actor: 'api:chaos' }));
        send(404, { error: { code: 'not_found', message: 'no such route' } });
      };
      handle().catch((error) => {
        if (error instanceof DroverError && STATUS_OF_CODE[error.code]) send(STATUS_OF_CODE[error.code], { error: { code: error.code, message: error.message } });
        else send(500, { error: { code: 'internal', message: String(error?.message ?? error) } });
      });
    });
  });
  server.listen(args.port, '127.0.0.1');
  const stop = () => server.close(() => void drover.close().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
}

main().catch((error) => {
  console.error(`chaos api server: ${error?.stack ?? error}`);
  process.exit(1);
});
