import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { loadConfig } from './src/config';
import { dataSourceOptions } from './src/db/data-source';
import { embeddedDatabaseUrl } from './src/embedded/embedded-database';

/**
 * The TypeORM DataSource that the TypeORM CLI and `drover migrate` use.
 * With `DATABASE_URL` unset it points at the embedded Postgres of
 * `DROVER_DATA_DIR` (which `drover start` runs).
 */
const config = loadConfig();
export default new DataSource(dataSourceOptions({ url: config.databaseUrl ?? embeddedDatabaseUrl(config.dataDir) }));
