import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { cliEnv } from './helpers/server-process';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..');
const CONSUMER = path.join(__dirname, 'fixtures/consumer');
const TSC = require.resolve('typescript/bin/tsc', { paths: [ROOT] });

/** Runs a command, failing with its output (not just its exit code) when it fails. */
async function sh(file: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<string> {
  try {
    const { stdout } = await run(file, args, { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 << 20 });
    return stdout;
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/** Starts the installed `drover` command and resolves once its stdout matches `ready`. */
function startInstalled(bin: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`drover ${args.join(' ')} was not ready in time: ${output}`)); }, 30_000);
    const seen = (chunk: Buffer) => {
      output += chunk;
      if (ready.test(output)) { clearTimeout(timer); resolve(child); }
    };
    child.stdout!.on('data', seen);
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk; });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`drover ${args.join(' ')} exited with ${code}: ${output}`)); });
  });
}

/** SIGTERM, then the exit. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

describe('the client entry', () => {
  it('loads nothing of the engine (no bullmq, typeorm or pg)', async () => {
    const out = await sh(process.execPath, ['-e', `
      require(${JSON.stringify(path.join(ROOT, 'dist/src/client'))});
      const bad = Object.keys(require.cache).filter((f) => /node_modules\\/(bullmq|typeorm|pg|ioredis|express)\\//.test(f));
      process.stdout.write(JSON.stringify({ bad, files: Object.keys(require.cache).length }));`], { cwd: ROOT });
    const { bad, files } = JSON.parse(out);
    expect(bad).toEqual([]);
    expect(files).toBeLessThan(15);
  });
});

/**
 * Packs drover, installs the tarball into a project outside the repository,
 * type-checks a typed workflow there (its mistakes must not compile), and runs
 * it: a worker started by the installed `drover` command on a TypeScript
 * module, producers in process (`drover.start`) and over HTTP (`drover/client`).
 */
describe('the packed package, installed in a new project', () => {
  let dir: string;
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-consumer-')); });
  afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

  it('installs, type-checks and runs a typed workflow and the client', async () => {
    // dist/ is already built by `tsc -p .` (npm test): packing without the prepack
    // build keeps other test files, which run the compiled CLI, from seeing files rewritten.
    const packed = JSON.parse(await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT }));
    const files: string[] = packed[0].files.map((f: { path: string }) => f.path);
    // Sources stay out; the dashboard's static CSS and JS are the one part of src/ the package serves.
    expect(files.filter((f) => (/^(test|bench|chaos|src)\//.test(f) && !f.startsWith('src/dashboard/assets/'))
      || f.startsWith('dist/test') || f.startsWith('dist/bench') || f.startsWith('dist/chaos'))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['src/dashboard/assets/app.css', 'src/dashboard/assets/app.js']));
    expect(files).toEqual(expect.arrayContaining(['package.json', 'bin/drover.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/client/index.js', 'dist/src/client/index.d.ts']));

    const project = path.join(dir, 'project');
    fs.mkdirSync(project);
    for (const file of fs.readdirSync(CONSUMER)) fs.copyFileSync(path.join(CONSUMER, file), path.join(project, file));
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'node16', moduleResolution: 'node16', strict: true, skipLibCheck: true, outDir: 'out', rootDir: '.', types: ['node'] },
      include: ['*.ts'],
    }));
    // The cache holds the tarballs; the registry is asked for package metadata only.
    await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(dir, packed[0].filename)], { cwd: project, timeoutMs: 120_000 });

    // mistakes.ts has an @ts-expect-error on each mistake: were the installed types loose, they would be unused, and tsc fails.
    await sh(process.execPath, [TSC, '-p', '.'], { cwd: project });

    const clientOnly = JSON.parse(await sh(process.execPath, ['client-only.js'], { cwd: project }));
    expect(clientOnly).toEqual(['drover']);

    const env = cliEnv({ DATABASE_URL: await createTestDatabase(), REDIS_URL: testRedisUrl(), DROVER_NAMESPACE: uniqueNamespace() });
    const worker = await startInstalled(path.join(project, 'node_modules/.bin/drover'), ['worker', '--module', 'workflows.ts'], project, env, /drover worker \S+ consuming/);
    try {
      const out = JSON.parse(await sh(process.execPath, ['out/main.js'], { cwd: project, env }));
      expect(out).toEqual({
        local: { text: 'HELLO ADA!', length: 9 },
        length: 9,
        remote: { text: 'HELLO BOBHELLO BOB!', length: 18 },
        invalid: '422 invalid_input input.name',
        unknown: 'unknown_workflow',
        resultErrors: 'function',
      });
    } finally {
      worker.removeAllListeners('exit');
      await stop(worker);
    }
  }, 180_000);
});
