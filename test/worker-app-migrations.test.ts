import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { Drover } from '../src/drover';
import { loadUserModule } from '../src/workflows/module-loader';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv, spawnDrover } from './helpers/server-process';

const MODULE = path.join(__dirname, 'fixtures/app-module.ts');

// A module may bring the app's own entities and migrations: `drover worker --module` runs them before it consumes.
describe('drover worker --module with the app\'s own entities and migrations', () => {
  it('migrates the app\'s table at start-up (once, with two workers) and its step writes through the entity', async () => {
    const databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    const env = cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), DROVER_NAMESPACE: namespace });
    const ready = { ready: /drover worker (\S+) consuming/ };
    // Two workers at once: the migrations take turns and apply once.
    const workers = await Promise.all([spawnDrover(['worker', '--module', MODULE], env, ready), spawnDrover(['worker', '--module', MODULE], env, ready)]);
    const drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    const db = new Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { rows: applied } = await db.query(`SELECT name FROM app_module_migrations`);
      expect(applied).toEqual([{ name: 'CreateNotes1700000000001' }]);
      const run = await drover.createRun({ workflow: 'note', input: { text: 'hello' } });
      const done = await drover.waitForRun(run.id, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'succeeded', output: { write: { written: 1 } } });
      const { rows } = await db.query(`SELECT run_id, text FROM app_module.notes`);
      expect(rows).toEqual([{ run_id: run.id, text: 'hello' }]);
    } finally {
      await db.end();
      await drover.close();
      for (const w of workers) expect(await w.stop('SIGTERM')).toBe(0);
    }
  }, 60_000);

  it('refuses malformed exports with one line naming the module and what to fix', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'drover-app-module-'));
    try {
      const cases: Array<[string, RegExp]> = [
        ['exports.workflows = []; exports.migrations = ["CreateX"]; exports.migrationsTableName = "app_m";', /migrations must be an array of migration classes/],
        ['exports.workflows = []; exports.migrations = [class { async up() {} async down() {} }];', /migrations need migrationsTableName/],
        ['exports.workflows = []; exports.migrations = []; exports.migrationsTableName = "drover_migrations";', /migrationsTableName must be a table name .* not drover's own/],
        ['exports.workflows = []; exports.migrations = []; exports.migrationsTableName = "bad name;";', /migrationsTableName must be a table name/],
        ['exports.workflows = []; exports.entities = "Note";', /entities must be an array of TypeORM entity classes or EntitySchemas/],
      ];
      for (const [i, [source, message]] of cases.entries()) {
        const file = path.join(dir, `m${i}.js`);
        await writeFile(file, source);
        await expect(loadUserModule(file, { logger: { warn: () => undefined } as never })).rejects.toThrow(message);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
