import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { databaseUrl, TEMPLATE_DB } from '../harness/services';

/** The queue backends every engine test runs on. */
export const BACKENDS = ['redis', 'postgres'] as const;
export type BackendKind = (typeof BACKENDS)[number];

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with "npm test" (the harness starts Redis and Postgres)`);
  return value;
}

/** URL of the test Redis server. */
export function testRedisUrl(): string {
  return required('DROVER_TEST_REDIS_URL');
}

/** URL of the test Postgres server's admin database. */
export function testServerUrl(): string {
  return required('DROVER_TEST_PG_URL');
}

/** A fresh database copied from the migrated template; returns its URL. */
export async function createTestDatabase(): Promise<string> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: testServerUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DB}`);
  } finally {
    await admin.end();
  }
  return databaseUrl(testServerUrl(), name);
}

/** A fresh, empty database (not migrated). */
export async function createEmptyDatabase(): Promise<string> {
  const name = `e_${randomBytes(6).toString('hex')}`;
  const admin = new Client({ connectionString: testServerUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return databaseUrl(testServerUrl(), name);
}

/** A queue namespace no other test uses. */
export function uniqueNamespace(prefix = 't'): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

/** Runs a describe block once per queue backend. */
export function describeEachBackend(name: string, body: (backend: BackendKind) => void): void {
  describe.each(BACKENDS)(`${name} [%s]`, (backend) => body(backend));
}

/** The REDIS_URL a component gets on a backend: the test Redis, or none (Postgres queues). */
export function redisUrlFor(backend: BackendKind): string | undefined {
  return backend === 'redis' ? testRedisUrl() : undefined;
}
