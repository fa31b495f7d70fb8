import { Client } from 'pg';
import { ApiKeyStore } from '../src/auth/api-keys';
import { Drover } from '../src/drover';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, spawnDrover, type DroverProcess } from './helpers/server-process';

/** One malformed request: a method, a path (already encoded) and a raw body with its headers. */
interface Case {
  name: string;
  method?: string;
  path: string;
  /** Raw body; objects are sent as JSON. */
  body?: string | Buffer | object;
  headers?: Record<string, string>;
  /** When the answer must be one exact status. */
  status?: number;
  /** When the error message must be this exact text. */
  message?: string;
}

const UUID = '00000000-0000-4000-8000-000000000000';
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

const CASES: Case[] = [
  // Bodies that are not JSON, or not an object.
  { name: 'truncated JSON', method: 'POST', path: '/api/runs', body: '{"workflow":"one",', status: 400 },
  { name: 'trailing garbage', method: 'POST', path: '/api/runs', body: '{"workflow":"one"} x', status: 400 },
  { name: 'single quotes', method: 'POST', path: '/api/runs', body: "{'workflow':'one'}", status: 400 },
  { name: 'empty body with JSON type', method: 'POST', path: '/api/runs', body: '', status: 400 },
  { name: 'JSON null', method: 'POST', path: '/api/runs', body: 'null', status: 400 },
  { name: 'JSON string', method: 'POST', path: '/api/runs', body: '"one"', status: 400 },
  { name: 'JSON number', method: 'POST', path: '/api/runs', body: '42', status: 400 },
  { name: 'JSON array', method: 'POST', path: '/api/runs', body: '[{"workflow":"one"}]', status: 400 },
  { name: 'NaN literal', method: 'POST', path: '/api/runs', body: '{"workflow":"one","priority":NaN}', status: 400 },
  { name: 'invalid UTF-8 bytes', method: 'POST', path: '/api/runs', body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), status: 400 },
  { name: 'invalid UTF-8 inside a string of a valid run', method: 'POST', path: '/api/runs', body: Buffer.concat([Buffer.from('{"workflow":"one","input":{"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}}')]), status: 400 },
  { name: 'text/plain body', method: 'POST', path: '/api/runs', body: '{"workflow":"one"}', headers: { 'content-type': 'text/plain' }, status: 400 },
  { name: 'no content type', method: 'POST', path: '/api/runs', body: Buffer.from('{"workflow":"one"}'), headers: { 'content-type': '' }, status: 400 },
  { name: 'unknown charset', method: 'POST', path: '/api/runs', body: '{"workflow":"one"}', headers: { 'content-type': 'application/json; charset=klingon' } },
  { name: 'bogus gzip encoding', method: 'POST', path: '/api/runs', body: '{"workflow":"one"}', headers: { 'content-encoding': 'gzip' } },
  { name: 'unknown content encoding', method: 'POST', path: '/api/runs', body: '{"workflow":"one"}', headers: { 'content-encoding': 'zip-bomb' } },
  { name: 'body of 3 MiB', method: 'POST', path: '/api/runs', body: { workflow: 'one', input: { x: 'y'.repeat(3 * 1024 * 1024) } }, status: 413 },
  { name: 'input over the input limit', method: 'POST', path: '/api/runs', body: { workflow: 'one', input: { x: 'y'.repeat(1024 * 1024 + 1) } }, status: 413 },
  { name: 'JSON nested 100 000 deep', method: 'POST', path: '/api/runs', body: `{"workflow":"one","input":{"a":${nested(100_000)}}}`, status: 400 },
  { name: 'JSON nested 65 deep', method: 'POST', path: '/api/runs', body: `{"workflow":"one","input":{"a":${nested(63)}}}`, status: 400 },
  // Wrong types and values.
  { name: 'workflow missing', method: 'POST', path: '/api/runs', body: { input: {} }, status: 400 },
  { name: 'workflow a number', method: 'POST', path: '/api/runs', body: { workflow: 123 }, status: 400 },
  { name: 'workflow null', method: 'POST', path: '/api/runs', body: { workflow: null }, status: 400 },
  { name: 'workflow an array', method: 'POST', path: '/api/runs', body: { workflow: ['one'] }, status: 400 },
  { name: 'workflow empty', method: 'POST', path: '/api/runs', body: { workflow: '' }, status: 400 },
  { name: 'workflow upper case', method: 'POST', path: '/api/runs', body: { workflow: 'ONE' }, status: 400 },
  { name: 'workflow too long', method: 'POST', path: '/api/runs', body: { workflow: 'o'.repeat(65) }, status: 400 },
  { name: 'workflow SQL injection', method: 'POST', path: '/api/runs', body: { workflow: "one'; DROP TABLE drover.runs; --" }, status: 400 },
  { name: 'workflow with NUL', method: 'POST', path: '/api/runs', body: '{"workflow":"one\\u0000"}', status: 400 },
  { name: 'workflow lone surrogate', method: 'POST', path: '/api/runs', body: '{"workflow":"\\ud800"}', status: 400 },
  { name: 'workflow fullwidth letters', method: 'POST', path: '/api/runs', body: { workflow: 'ｏｎｅ' }, status: 400 },
  { name: 'workflow with RTL override', method: 'POST', path: '/api/runs', body: { workflow: 'one\u202e' }, status: 400 },
  { name: 'unknown workflow', method: 'POST', path: '/api/runs', body: { workflow: 'two' }, status: 422 },
  { name: 'input a string', method: 'POST', path: '/api/runs', body: { workflow: 'one', input: 'x' }, status: 400 },
  { name: 'input an array', method: 'POST', path: '/api/runs', body: { workflow: 'one', input: [1, 2] }, status: 400 },
  { name: 'input a number', method: 'POST', path: '/api/runs', body: { workflow: 'one', input: 7 }, status: 400 },
  { name: 'input value with NUL', method: 'POST', path: '/api/runs', body: '{"workflow":"one","input":{"a":"x\\u0000y"}}', status: 400 },
  { name: 'input key with NUL', method: 'POST', path: '/api/runs', body: '{"workflow":"one","input":{"\\u0000":1}}', status: 400 },
  { name: 'input lone low surrogate', method: 'POST', path: '/api/runs', body: '{"workflow":"one","input":{"a":"\\udc00"}}', status: 400 },
  { name: 'priority negative', method: 'POST', path: '/api/runs', body: { workflow: 'one', priority: -1 }, status: 400 },
  { name: 'priority fractional', method: 'POST', path: '/api/runs', body: { workflow: 'one', priority: 1.5 }, status: 400 },
  { name: 'priority a string', method: 'POST', path: '/api/runs', body: { workflow: 'one', priority: '1' }, status: 400 },
  { name: 'priority huge', method: 'POST', path: '/api/runs', body: '{"workflow":"one","priority":1e400}', status: 400 },
  { name: 'delayMs negative', method: 'POST', path: '/api/runs', body: { workflow: 'one', delayMs: -5 }, status: 400 },
  { name: 'delayMs a year', method: 'POST', path: '/api/runs', body: { workflow: 'one', delayMs: 365 * 86_400_000 }, status: 400 },
  { name: 'delayMs a string', method: 'POST', path: '/api/runs', body: { workflow: 'one', delayMs: 'soon' }, status: 400 },
  { name: 'workspace path traversal', method: 'POST', path: '/api/runs', body: { workflow: 'one', workspace: '../etc' }, status: 400 },
  { name: 'workspace empty', method: 'POST', path: '/api/runs', body: { workflow: 'one', workspace: '' }, status: 400 },
  { name: 'workspace emoji', method: 'POST', path: '/api/runs', body: { workflow: 'one', workspace: '😀' }, status: 400 },
  { name: 'idempotencyKey empty', method: 'POST', path: '/api/runs', body: { workflow: 'one', idempotencyKey: '' }, status: 400 },
  { name: 'idempotencyKey too long', method: 'POST', path: '/api/runs', body: { workflow: 'one', idempotencyKey: 'k'.repeat(256) }, status: 400 },
  { name: 'idempotencyKey non-ASCII', method: 'POST', path: '/api/runs', body: { workflow: 'one', idempotencyKey: 'clé' }, status: 400 },
  { name: 'idempotencyKey an object', method: 'POST', path: '/api/runs', body: { workflow: 'one', idempotencyKey: { $ne: null } }, status: 400 },
  { name: 'unknown field', method: 'POST', path: '/api/runs', body: { workflow: 'one', status: 'succeeded' }, status: 400 },
  { name: '__proto__ field', method: 'POST', path: '/api/runs', body: '{"workflow":"one","__proto__":{"admin":true}}', status: 400 },
  { name: 'constructor field', method: 'POST', path: '/api/runs', body: '{"workflow":"one","constructor":{"prototype":{}}}', status: 400 },
  // Batches.
  { name: 'batch without runs', method: 'POST', path: '/api/runs/batch', body: {}, status: 400 },
  { name: 'batch runs null', method: 'POST', path: '/api/runs/batch', body: { runs: null }, status: 400 },
  { name: 'batch runs an object', method: 'POST', path: '/api/runs/batch', body: { runs: { workflow: 'one' } }, status: 400 },
  { name: 'batch extra field', method: 'POST', path: '/api/runs/batch', body: { runs: [], dryRun: true }, status: 400 },
  { name: 'batch body an array', method: 'POST', path: '/api/runs/batch', body: [{ workflow: 'one' }], status: 400 },
  { name: 'batch of 1001', method: 'POST', path: '/api/runs/batch', body: { runs: Array.from({ length: 1001 }, () => ({ workflow: 'one' })) }, status: 400 },
  { name: 'batch bad JSON', method: 'POST', path: '/api/runs/batch', body: '{"runs":[', status: 400 },
  // Filters, limits and cursors.
  { name: 'limit 0', path: '/api/runs?limit=0', status: 400 },
  { name: 'limit negative', path: '/api/runs?limit=-1', status: 400 },
  { name: 'limit 101', path: '/api/runs?limit=101', status: 400 },
  { name: 'limit huge', path: '/api/runs?limit=99999999999999999999999', status: 400 },
  { name: 'limit infinite', path: '/api/runs?limit=1e400', status: 400 },
  { name: 'limit fractional', path: '/api/runs?limit=2.5', status: 400 },
  { name: 'limit empty', path: '/api/runs?limit=', status: 400 },
  { name: 'limit twice', path: '/api/runs?limit=1&limit=2', status: 400, message: 'limit: must be given once, as a single value' },
  { name: 'limit as array syntax', path: '/api/runs?limit[]=1', status: 400 },
  { name: 'status unknown', path: '/api/runs?status=done', status: 400 },
  { name: 'status SQL injection', path: `/api/runs?status=${encodeURIComponent("running' OR '1'='1")}`, status: 400 },
  { name: 'workflow filter injection', path: `/api/runs?workflow=${encodeURIComponent("x'; DELETE FROM drover.runs; --")}`, status: 400 },
  { name: 'workflow filter with NUL', path: '/api/runs?workflow=one%00', status: 400 },
  { name: 'workspace filter unicode', path: `/api/runs?workspace=${encodeURIComponent('ｗｓ')}`, status: 400 },
  { name: 'unknown filter', path: '/api/runs?owner=me', status: 400, message: 'query: Unrecognized key: "owner"' },
  { name: 'cursor garbage', path: '/api/runs?cursor=%%%', status: 400 },
  { name: 'cursor not base64 JSON', path: '/api/runs?cursor=bm90IGpzb24', status: 400 },
  { name: 'cursor wrong shape', path: `/api/runs?cursor=${b64({ at: 1 })}`, status: 400 },
  { name: 'cursor bad uuid', path: `/api/runs?cursor=${b64(['2024-01-01 00:00:00+00', "1' OR 1=1"])}`, status: 400 },
  { name: 'cursor impossible date', path: `/api/runs?cursor=${b64(['2024-02-31 10:00:00+00', UUID])}`, status: 400 },
  { name: 'cursor too long', path: `/api/runs?cursor=${'A'.repeat(5000)}`, status: 400 },
  { name: 'cursor day past its month end', path: `/api/runs?cursor=${b64(['2023-04-31 10:00:00+00', UUID])}`, status: 400 },
  { name: 'cursor offset out of range', path: `/api/runs?cursor=${b64(['2024-01-01 10:00:00+99:99', UUID])}`, status: 400 },
  // Ids.
  { name: 'id injection', path: `/api/runs/${encodeURIComponent("1' OR '1'='1")}`, status: 404 },
  { name: 'id with NUL', path: '/api/runs/%00', status: 404 },
  { name: 'id emoji', path: '/api/runs/%F0%9F%98%80', status: 404 },
  { name: 'id lone surrogate (bad UTF-8 escape)', path: '/api/runs/%ED%A0%80' },
  { name: 'id broken percent escape', path: '/api/runs/%E0%A4%A' },
  { name: 'id uppercase-ish uuid with suffix', path: `/api/runs/${UUID}x`, status: 404 },
  { name: 'id 10 000 characters', path: `/api/runs/${'a'.repeat(10_000)}`, status: 404 },
  { name: 'id traversal', path: '/api/runs/..%2F..%2Fetc%2Fpasswd', status: 404 },
  { name: 'audit of injection id', path: `/api/runs/${encodeURIComponent('; SELECT pg_sleep(10)')}/audit`, status: 404 },
  { name: 'cancel injection id', method: 'POST', path: `/api/runs/${encodeURIComponent("' OR 1=1 --")}/cancel`, status: 404 },
  { name: 'retry unknown id', method: 'POST', path: `/api/runs/${UUID}/retry`, status: 404 },
  { name: 'cancel with bad JSON body', method: 'POST', path: `/api/runs/${UUID}/cancel`, body: '{oops', status: 400 },
  // Routes and methods.
  { name: 'unknown API route', path: '/api/run', status: 404 },
  { name: 'DELETE a run', method: 'DELETE', path: `/api/runs/${UUID}`, status: 405 },
  { name: 'PUT runs', method: 'PUT', path: '/api/runs', body: { workflow: 'one' }, status: 405 },
];

describe('malformed requests', () => {
  let databaseUrl: string;
  let drover: Drover;
  let server: DroverProcess;
  let key: string;

  const counts = async () => {
    const db = new Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const row = (await db.query(`SELECT
        (SELECT count(*) FROM drover.runs)::int AS runs, (SELECT count(*) FROM drover.steps)::int AS steps,
        (SELECT count(*) FROM drover.audit_events)::int AS audit, (SELECT count(*) FROM drover.workflows)::int AS workflows,
        (SELECT count(*) FROM drover.api_keys)::int AS keys`)).rows[0];
      return row;
    } finally {
      await db.end();
    }
  };

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    key = (await drover.apiKeys.create('fuzz')).key;
    server = await spawnDrover(['server'], cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace }));
  });
  afterAll(async () => {
    const code = await server?.stop();
    await drover?.close();
    expect(code).toBe(0);
  });

  it(`has at least 50 cases (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(50);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it('answers every malformed request with a 4xx JSON error and changes nothing', async () => {
    const before = await counts();
    expect(before).toMatchObject({ runs: 0, workflows: 1, keys: 1 });
    const failures: string[] = [];
    for (const c of CASES) {
      const headers: Record<string, string> = { authorization: `Bearer ${key}`, ...(c.body !== undefined ? { 'content-type': 'application/json' } : {}), ...c.headers };
      if (headers['content-type'] === '') delete headers['content-type'];
      const body = c.body === undefined || typeof c.body === 'string' || Buffer.isBuffer(c.body) ? c.body : JSON.stringify(c.body);
      const response = await fetch(`${server.url}${c.path}`, { method: c.method ?? 'GET', headers, body: body as unknown as RequestInit['body'], redirect: 'manual' });
      const text = await response.text();
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      const ok = response.status >= 400 && response.status < 500
        && (c.status === undefined || response.status === c.status)
        && (c.message === undefined || json?.error?.message === c.message)
        && /^application\/json/.test(response.headers.get('content-type') ?? '')
        && typeof json?.error?.code === 'string' && typeof json?.error?.message === 'string'
        && !/\bat .+:\d+:\d+/.test(text)
        // Postgres' own messages name internals: they stay in the log.
        && !/date\/time|invalid input syntax|out of range for type|time zone displacement/i.test(text);
      if (!ok) failures.push(`${c.name}: ${response.status} ${text.slice(0, 200)}`);
    }
    expect(failures).toEqual([]);
    expect(await counts()).toEqual(before);
    // The server is still healthy afterwards.
    expect((await fetch(`${server.url}/ready`)).status).toBe(200);
    expect(server.stderr()).not.toMatch(/request failed/);
  });
});
