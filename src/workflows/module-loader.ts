import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveModule } from './definitions';
import { ConfigError } from '../errors';
import type { DroverModule } from '../types';

let tsHookInstalled = false;

/**
 * Lets `require` load `.ts` files by transpiling them with TypeScript's
 * `transpileModule` (CommonJS, legacy decorators; no type checking). Left
 * alone when something else (ts-node, a test runner) already handles `.ts`.
 */
export function installTypeScriptHook(): void {
  if (tsHookInstalled || require.extensions['.ts']) return;
  let ts: typeof import('typescript');
  try {
    ts = require('typescript') as typeof import('typescript');
  } catch {
    throw new ConfigError('loading a .ts module needs the "typescript" package: run "npm install typescript", or compile the module to .js');
  }
  require.extensions['.ts'] = (module, filename) => {
    const source = fs.readFileSync(filename, 'utf8');
    const output = ts.transpileModule(source, {
      fileName: filename,
      compilerOptions: {
        module: ts.ModuleKind.CommonJS,
        target: ts.ScriptTarget.ES2022,
        esModuleInterop: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        sourceMap: false,
        inlineSourceMap: true,
      },
    });
    (module as unknown as { _compile(code: string, file: string): void })._compile(output.outputText, filename);
  };
  tsHookInstalled = true;
}

/**
 * Loads a user module (`.js`, `.cjs`, or `.ts` through the TypeScript hook)
 * from a path relative to `cwd`, and validates its workflows and processors.
 * Throws `ConfigError` (missing or broken file) or `DefinitionError` (invalid
 * definitions, naming the workflow and step), each with a one-line message.
 */
export function loadUserModule(modulePath: string, cwd = process.cwd()): DroverModule {
  const file = path.resolve(cwd, modulePath);
  if (!fs.existsSync(file)) throw new ConfigError(`module not found: ${file}`);
  const ext = path.extname(file);
  if (ext === '.ts') installTypeScriptHook();
  else if (ext !== '.js' && ext !== '.cjs') throw new ConfigError(`${modulePath}: a module must be a .js (CommonJS), .cjs or .ts file`);
  let loaded: unknown;
  try {
    loaded = require(file);
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(`could not load module ${modulePath}: ${message}`);
  }
  const candidate = loaded as { workflows?: unknown; processors?: unknown; default?: unknown };
  const mod = (candidate && candidate.workflows === undefined && candidate.processors === undefined && candidate.default
    ? candidate.default
    : candidate) as DroverModule;
  resolveModule(mod, modulePath);
  return mod;
}
