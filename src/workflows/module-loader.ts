import * as fs from 'node:fs';
import * as path from 'node:path';
import { createJiti } from 'jiti';
import { isCompilableWorkflow, resolveModule } from './definitions';
import { ConfigError } from '../errors';
import type { Logger } from '../telemetry/logger';
import type { CompilableWorkflow, DroverModule, WorkflowDefinition } from '../types';

/** The extensions a user module may have. */
export const MODULE_EXTENSIONS = ['.js', '.cjs', '.mjs', '.ts', '.cts', '.mts'] as const;

/** Options of `loadUserModule`. */
export interface LoadModuleOptions {
  /** What a relative path is resolved against. Default `process.cwd()`. */
  cwd?: string;
  /** Where the warning about a module without workflows goes. Default `process.emitWarning`. */
  logger?: Pick<Logger, 'warn'>;
}

/**
 * Loads a user module through jiti (CommonJS or ESM; `.js`, `.cjs`, `.mjs`,
 * `.ts`, `.cts` or `.mts`; TypeScript is transpiled, not type-checked) and
 * validates its workflows and processors. The module may export `workflows`
 * (plain definitions or typed workflows) and `processors`, a default export
 * of either shape, a typed workflow or a list of them, or typed workflows as
 * named exports. Throws `ConfigError` (missing file, syntax error as
 * `file:line:column`, an error while loading) or `DefinitionError` (invalid
 * definitions, naming the workflow and step), each a one-line message; warns
 * when the module has no workflows.
 */
export async function loadUserModule(modulePath: string, options: LoadModuleOptions | string = {}): Promise<DroverModule> {
  const { cwd = process.cwd(), logger } = typeof options === 'string' ? { cwd: options } : options;
  const file = path.resolve(cwd, modulePath);
  if (!fs.existsSync(file)) throw new ConfigError(`module not found: ${file}`);
  if (!(MODULE_EXTENSIONS as readonly string[]).includes(path.extname(file))) {
    throw new ConfigError(`${modulePath}: a module must be a ${MODULE_EXTENSIONS.slice(0, -1).join(', ')} or ${MODULE_EXTENSIONS[MODULE_EXTENSIONS.length - 1]} file`);
  }
  let loaded: unknown;
  try {
    // No file cache: nothing is written beside the user's code or in node_modules.
    const jiti = createJiti(__filename, { fsCache: false, interopDefault: false });
    loaded = await jiti.import(file);
  } catch (error) {
    throw new ConfigError(describeLoadError(modulePath, file, error));
  }
  const mod = { ...moduleShape(loaded, modulePath), ...appDatabaseOf(loaded as Record<string, unknown>, modulePath) };
  const { workflows } = resolveModule(mod, modulePath);
  if (workflows.length === 0) {
    const message = `module ${modulePath} exports no workflows (export "workflows", a default export, or typed workflows)`;
    if (logger) logger.warn({ module: file }, message);
    else process.emitWarning(message, 'DroverWarning');
  }
  return mod;
}

/** The module's workflows and processors, from whichever shape it exports. */
function moduleShape(loaded: unknown, source: string): DroverModule {
  if (typeof loaded !== 'object' || loaded === null) throw new ConfigError(`${source} must export workflows (and processors)`);
  const ns = loaded as Record<string, unknown>;
  if (ns.workflows !== undefined || ns.processors !== undefined) return ns as DroverModule;
  const fallback = ns.default;
  if (isCompilableWorkflow(fallback)) return { workflows: [fallback] };
  if (Array.isArray(fallback)) return { workflows: fallback as Array<WorkflowDefinition | CompilableWorkflow> };
  if (typeof fallback === 'object' && fallback !== null) {
    const inner = fallback as Record<string, unknown>;
    if (inner.workflows !== undefined || inner.processors !== undefined) return inner as DroverModule;
  }
  return { workflows: Object.entries(ns).filter(([key, value]) => key !== 'default' && isCompilableWorkflow(value)).map(([, value]) => value as CompilableWorkflow) };
}

/** Where a table name may point: an identifier, optionally schema-qualified. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

/**
 * The app's own database parts a module may export beside its workflows
 * (named, or on a default export object): `entities`, `migrations` and
 * `migrationsTableName`, checked here so a mistake is one line at start-up.
 */
function appDatabaseOf(ns: Record<string, unknown>, source: string): Pick<DroverModule, 'entities' | 'migrations' | 'migrationsTableName'> {
  const from = (key: string): unknown => ns[key] ?? (typeof ns.default === 'object' && ns.default !== null ? (ns.default as Record<string, unknown>)[key] : undefined);
  const entities = from('entities');
  const migrations = from('migrations');
  const table = from('migrationsTableName');
  const out: Pick<DroverModule, 'entities' | 'migrations' | 'migrationsTableName'> = {};
  if (entities !== undefined) {
    if (!Array.isArray(entities) || !entities.every((e) => typeof e === 'function' || (typeof e === 'object' && e !== null && 'options' in e))) {
      throw new ConfigError(`module ${source}: entities must be an array of TypeORM entity classes or EntitySchemas`);
    }
    out.entities = entities as DroverModule['entities'];
  }
  if (migrations !== undefined) {
    if (!Array.isArray(migrations) || !migrations.every((m) => typeof m === 'function' && typeof (m as { prototype?: { up?: unknown } }).prototype?.up === 'function')) {
      throw new ConfigError(`module ${source}: migrations must be an array of migration classes (each with up() and down())`);
    }
    if (table === undefined) throw new ConfigError(`module ${source}: migrations need migrationsTableName (the table that records them; not drover's own)`);
    out.migrations = migrations as DroverModule['migrations'];
  }
  if (table !== undefined) {
    if (typeof table !== 'string' || !TABLE_NAME.test(table) || table === 'drover_migrations' || table === 'public.drover_migrations') {
      throw new ConfigError(`module ${source}: migrationsTableName must be a table name such as "app_migrations" or "app.migrations", not drover's own (got ${JSON.stringify(table)})`);
    }
    out.migrationsTableName = table;
  }
  return out;
}

/**
 * One line for an error thrown while loading: a syntax error as
 * `file:line:column` (jiti reports Babel's location), anything else with its
 * first line and the module's frame when the stack has one.
 */
function describeLoadError(modulePath: string, file: string, error: unknown): string {
  // Duck-typed: the module's code may run in another realm, whose errors are not `instanceof Error` here.
  const err = (typeof error === 'object' && error !== null ? error : {}) as { message?: unknown; name?: unknown; stack?: unknown };
  const message = typeof err.message === 'string' ? err.message : String(error);
  const parse = /^(?:\w*Error: )?([^\n]*?)\s*\n\s*(\S+:\d+:\d+)\s*$/.exec(message);
  if (parse && err.name !== 'TypeError') return `syntax error in module ${modulePath} at ${parse[2]}: ${parse[1]}`;
  const at = frameIn(typeof err.stack === 'string' ? err.stack : '', file);
  if (err.name === 'SyntaxError') return `syntax error in module ${modulePath}${at ? ` at ${at}` : ''}: ${message.split('\n')[0]}`;
  return `could not load module ${modulePath}: ${message.split('\n')[0]}${at ? ` (at ${at})` : ''}`;
}

function frameIn(stack: string, file: string): string | undefined {
  const line = stack.split('\n').find((l) => l.includes(file));
  const match = line && /(\S+:\d+:\d+)\)?\s*$/.exec(line);
  return match ? match[1].replace(/^\(/, '').replace(/^file:\/\//, '') : undefined;
}
