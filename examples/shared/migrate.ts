import { DataSource, type EntitySchema, type MigrationInterface } from 'typeorm';

/**
 * Runs an example's own migrations with a DataSource of its own (its own
 * migrations table, its own schema), beside drover's in the same database.
 */
export async function migrateExample(url: string, options: {
  entities: EntitySchema[];
  migrations: Array<new () => MigrationInterface>;
  migrationsTableName: string;
}): Promise<void> {
  const ds = new DataSource({ type: 'postgres', url, entities: options.entities, migrations: options.migrations, migrationsTableName: options.migrationsTableName });
  await ds.initialize();
  try {
    await ds.runMigrations();
  } finally {
    await ds.destroy();
  }
}
