import { DataSource, type EntitySchema, type MigrationInterface } from 'typeorm';
import type { Sql } from './sql';

/** An app's own migrations, as a module exports them. */
export interface AppMigrations {
  entities?: Array<Function | EntitySchema>;
  migrations: Array<new () => MigrationInterface>;
  migrationsTableName: string;
}

/**
 * Runs an app's own TypeORM migrations beside drover's, in the same database,
 * with a DataSource of their own (their own migrations table). Workers that
 * start at once take turns: a session advisory lock keyed by the table name
 * is held on one of drover's connections while they run.
 * @returns the names of the migrations applied now.
 */
export async function runAppMigrations(url: string, sql: Sql, app: AppMigrations): Promise<string[]> {
  const lock = await sql.pool.connect();
  try {
    await lock.query(`SELECT pg_advisory_lock(hashtextextended('drover app migrations ' || $1, 0))`, [app.migrationsTableName]);
    const ds = new DataSource({
      type: 'postgres', url, entities: app.entities ?? [], migrations: app.migrations, migrationsTableName: app.migrationsTableName,
      applicationName: 'drover-app-migrations', extra: { max: 2 },
    });
    await ds.initialize();
    try {
      return (await ds.runMigrations({ transaction: 'each' })).map((m) => m.name);
    } finally {
      await ds.destroy();
      await lock.query(`SELECT pg_advisory_unlock(hashtextextended('drover app migrations ' || $1, 0))`, [app.migrationsTableName]).catch(() => undefined);
    }
  } finally {
    lock.release();
  }
}
