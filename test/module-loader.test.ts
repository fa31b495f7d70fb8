import * as path from 'node:path';
import type { Processor, WorkflowDefinition, CompilableWorkflow } from '../src/types';
import { loadUserModule } from '../src/workflows/module-loader';
import { createEngine, type EngineHarness } from './helpers/engine';
import { testRedisUrl, uniqueNamespace, createTestDatabase } from './helpers/env';
import { cliEnv, runCli } from './helpers/server-process';

const DIR = path.join(__dirname, 'fixtures/modules');
const KINDS = ['plain.cjs', 'plain.mjs', 'esm-syntax.js', 'typed.ts', 'typed-default.mts', 'named.cts'];

/** Loads a fixture module, collecting the warnings it causes. */
async function load(name: string): Promise<{ workflows: Array<WorkflowDefinition | CompilableWorkflow>; processors: Record<string, Processor>; warnings: string[] }> {
  const warnings: string[] = [];
  const mod = await loadUserModule(name, { cwd: DIR, logger: { warn: (_: unknown, message?: string) => { warnings.push(String(message)); } } });
  return { workflows: mod.workflows ?? [], processors: mod.processors ?? {}, warnings };
}

async function loadError(name: string): Promise<string> {
  try {
    await loadUserModule(name, { cwd: DIR });
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${name} loaded`);
}

describe('user modules', () => {
  it('loads CommonJS and ESM, JavaScript and TypeScript, in each export shape', async () => {
    for (const kind of KINDS) {
      const mod = await load(kind);
      expect(mod.workflows).toHaveLength(1);
      expect(mod.warnings).toEqual([]);
    }
  });

  it('reports a syntax error as one line with file:line:column', async () => {
    expect(await loadError('broken.ts')).toBe(`syntax error in module broken.ts at ${DIR}/broken.ts:3:32: Unexpected token, expected ","`);
    expect(await loadError('broken.mjs')).toBe(`syntax error in module broken.mjs at ${DIR}/broken.mjs:2:26: Unexpected token`);
  });

  it('reports an error thrown while loading with its place, and refuses other files', async () => {
    expect(await loadError('throws.cjs')).toBe(`could not load module throws.cjs: Cannot read properties of undefined (reading 'workflows') (at ${DIR}/throws.cjs:3:38)`);
    expect(await loadError('wrong.json')).toBe('wrong.json: a module must be a .js, .cjs, .mjs, .ts, .cts or .mts file');
    expect(await loadError('nowhere.ts')).toBe(`module not found: ${DIR}/nowhere.ts`);
  });

  it('warns about a module without workflows', async () => {
    expect((await load('empty.js')).warnings).toEqual(['module empty.js exports no workflows (export "workflows", a default export, or typed workflows)']);
  });

  it('the CLI prints a syntax error as one line and stops', async () => {
    const env = cliEnv({ DATABASE_URL: await createTestDatabase(), REDIS_URL: testRedisUrl(), DROVER_NAMESPACE: uniqueNamespace() });
    const result = await runCli(['worker', '-m', path.join(DIR, 'broken.ts')], env, { timeoutMs: 20_000 });
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toEqual([`drover: syntax error in module ${DIR}/broken.ts at ${DIR}/broken.ts:3:32: Unexpected token, expected ","`]);
  });
});

describe('a worker running every kind of module', () => {
  let engine: EngineHarness;
  beforeAll(async () => { engine = await createEngine('redis'); });
  afterAll(async () => { await engine.close(); });

  it('runs the workflows of each', async () => {
    const workflows: Array<WorkflowDefinition | CompilableWorkflow> = [];
    const processors: Record<string, Processor> = {};
    for (const kind of KINDS) {
      const mod = await load(kind);
      workflows.push(...mod.workflows);
      Object.assign(processors, mod.processors);
    }
    await engine.startWorker({ workflows, processors });
    const outputs: Record<string, unknown> = {};
    for (const name of ['mod-cjs', 'mod-mjs', 'mod-js', 'mod-ts', 'mod-mts', 'mod-cts']) {
      outputs[name] = await (await engine.drover.start(name, name === 'mod-ts' ? { n: 4 } : {})).result({ timeoutMs: 20_000 });
    }
    expect(outputs).toEqual({
      'mod-cjs': { a: { kind: 'cjs' } },
      'mod-mjs': { a: { kind: 'mjs' } },
      'mod-js': { a: { kind: 'js' } },
      'mod-ts': { kind: 'ts', n: 8 },
      'mod-mts': { a: { kind: 'mts' } },
      'mod-cts': { a: { kind: 'cts' } },
    });
  });
});
