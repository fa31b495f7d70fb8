import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import express from 'express';
import { Client } from 'pg';
import { Drover } from '../src/drover';
import { CommitUnknownError } from '../src/errors';
import { errorHandler } from '../src/http/errors';
import { EmbeddedPostgres, postgresBinDir, stopStaleServer } from '../src/embedded/embedded-postgres';
import { silentLogger } from '../src/telemetry/logger';
import { describeEachBackend, redisUrlFor, uniqueNamespace } from './helpers/env';
import { eventually } from './helpers/engine';
import { startOwnPostgres } from './helpers/own-postgres';

const PAIR = { name: 'pair', steps: [{ name: 'a', processor: 'p' }, { name: 'b', processor: 'p', dependsOn: ['a'] }] };
const HOLD_KEY = 4242;

/**
 * Restarts Postgres (`pg_ctl restart`, fast shutdown) while this process's event loop is
 * blocked, so the pool still holds the connections the restart killed: the next call
 * meets one, as a producer does that calls in just after a restart.
 */
function restartBlocking(pgDir: string): void {
  const bin = postgresBinDir();
  const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const asPostgres = process.getuid?.() === 0 ? { uid: id('-u'), gid: id('-g') } : {};
  const result = spawnSync(path.join(bin, 'pg_ctl'), ['restart', '-D', pgDir, '-m', 'fast', '-w', '-l', path.join(pgDir, 'restart.log')], {
    stdio: 'ignore', ...asPostgres, env: { ...process.env, LC_ALL: 'C', LD_LIBRARY_PATH: path.join(bin, '..', 'lib') },
  });
  if (result.status !== 0) throw new Error(`pg_ctl restart failed (${result.status})`);
}

// Producers (no worker) on a Postgres that restarts under them.
describeEachBackend('producers through a Postgres restart', (backend) => {
  let server: EmbeddedPostgres;
  let dir: string;
  let url: string;
  let drover: Drover;

  beforeEach(async () => {
    ({ server, dir, url } = await startOwnPostgres('producer', backend));
    drover = await Drover.connect({ databaseUrl: url, redisUrl: redisUrlFor(backend), namespace: uniqueNamespace() });
    await drover.registerWorkflows([PAIR]);
  });
  afterEach(async () => {
    await drover.close();
    await server.stop();
    await stopStaleServer(path.join(dir, 'pg')); // the one pg_ctl restarted
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Fills the pool with idle connections, then restarts Postgres under them. */
  async function restartUnderThePool(): Promise<void> {
    await Promise.all(Array.from({ length: 10 }, () => drover.listRuns()));
    restartBlocking(path.join(dir, 'pg'));
  }

  it('reads, creates (keyed or not) and cancels right after a restart succeed', async () => {
    const open = await drover.createRun({ workflow: 'pair' });
    await restartUnderThePool();
    const unkeyed = await drover.createRun({ workflow: 'pair' });
    await restartUnderThePool();
    const keyed = await drover.createRun({ workflow: 'pair', idempotencyKey: 'k1' });
    await restartUnderThePool();
    const batch = await drover.createRuns([{ workflow: 'pair' }, { workflow: 'pair', idempotencyKey: 'k2' }]);
    expect(batch).toMatchObject({ created: 2, failed: 0 });
    await restartUnderThePool();
    expect((await drover.cancelRun(open.id)).status).toBe('cancelled');
    await restartUnderThePool();
    expect((await drover.getRun(keyed.id)).steps).toHaveLength(2);
    await restartUnderThePool();
    expect((await drover.listRuns()).items.map((r) => r.id)).toContain(unkeyed.id);
    expect((await drover.listRuns()).items).toHaveLength(5);
  }, 60_000);

  describe('a connection cut while COMMIT is in flight', () => {
    let admin: Client;
    beforeEach(async () => {
      // A deferred trigger makes COMMIT wait for an advisory lock the test holds.
      admin = new Client({ connectionString: url });
      await admin.connect();
      await admin.query(`
        CREATE FUNCTION public.hold_commit() RETURNS trigger LANGUAGE plpgsql AS
          $$ BEGIN PERFORM pg_advisory_xact_lock(${HOLD_KEY}); RETURN NULL; END $$;
        CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON drover.runs DEFERRABLE INITIALLY DEFERRED
          FOR EACH ROW EXECUTE FUNCTION public.hold_commit();`);
      await admin.query('SELECT pg_advisory_lock($1)', [HOLD_KEY]);
    });
    afterEach(async () => {
      await admin.end().catch(() => undefined);
    });

    /** Waits until a COMMIT waits on the held lock, then terminates its connection. */
    async function cutTheCommit(): Promise<void> {
      const pid = await eventually(async () => {
        const rows = await admin.query(`SELECT pid FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event_type = 'Lock'`);
        return rows.rows[0]?.pid as number | undefined;
      }, 10_000, 'a COMMIT waiting on the lock');
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    }

    it('an unkeyed create fails with CommitUnknownError (retryable, code commit_unknown)', async () => {
      const creating = drover.createRun({ workflow: 'pair' }).then(() => undefined, (error: unknown) => error);
      await cutTheCommit();
      const error = await creating;
      expect(error).toBeInstanceOf(CommitUnknownError);
      expect(error).toMatchObject({ code: 'commit_unknown', retryable: true });
      expect((error as Error).message).toMatch(/may or may not have been created/);
    }, 30_000);

    it('a keyed create is retried and creates exactly one run', async () => {
      const creating = drover.createRun({ workflow: 'pair', idempotencyKey: 'once' });
      await cutTheCommit();
      await admin.query('SELECT pg_advisory_unlock($1)', [HOLD_KEY]);
      const run = await creating;
      const rows = await admin.query(`SELECT id FROM drover.runs WHERE idempotency_key = 'once'`);
      expect(rows.rows.map((r) => r.id)).toEqual([run.id]);
    }, 30_000);
  });
});

describe('the HTTP answer to CommitUnknownError', () => {
  it('is 503 with code unavailable and the error message', async () => {
    const app = express();
    app.post('/x', () => { throw new CommitUnknownError(new Error('terminating connection due to administrator command')); });
    app.use(errorHandler(silentLogger));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    try {
      const { port } = server.address() as { port: number };
      const res = await fetch(`http://127.0.0.1:${port}/x`, { method: 'POST' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('unavailable');
      expect(body.error.message).toMatch(/may or may not have been created/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
