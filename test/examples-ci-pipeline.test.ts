import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { ciEntities, ciMigrations, ciPipeline, CI_MIGRATIONS_TABLE, PIPELINE_FILE } from '../examples/ci-pipeline/workflows';
import { migrateExample } from '../examples/shared/migrate';
import type { DroverWorker } from '../src/worker/worker';

// examples/ci-pipeline (seed 003, Strøm): checkout → matrix by capability → deploy, on both queue backends.
describeEachBackend('example ci-pipeline', (backend) => {
  let engine: EngineHarness;
  let repo: string;
  let workers: { default: DroverWorker; shell: DroverWorker; docker: DroverWorker };
  beforeEach(async () => {
    engine = await createEngine(backend);
    await migrateExample(engine.databaseUrl, { entities: ciEntities, migrations: ciMigrations, migrationsTableName: CI_MIGRATIONS_TABLE });
    repo = await mkdtemp(join(tmpdir(), 'ci-repo-'));
    await writeFile(join(repo, 'Makefile'), 'all:\n');
    const options = { workflows: [ciPipeline], entities: ciEntities };
    workers = {
      default: await engine.startWorker({ ...options, queues: ['default'] }),
      shell: await engine.startWorker({ ...options, queues: ['shell'] }),
      docker: await engine.startWorker({ ...options, queues: ['docker'] }),
    };
  });
  afterEach(async () => {
    await engine.close();
    await rm(repo, { recursive: true, force: true });
  });

  const pipeline = (file: unknown) => writeFile(join(repo, PIPELINE_FILE), JSON.stringify(file));
  const stepRows = (runId: string) => engine.sql.query<{ name: string; status: string; worker_id: string | null }>(
    `SELECT name, status, worker_id FROM drover.steps WHERE run_id = $1 ORDER BY name`, [runId]);
  const logsOf = async (runId: string, step: string) => (await engine.drover.getStepLogs(runId, step, { limit: 100 })).items.map((l) => l.message);

  it('runs the matrix read after checkout, each job on a worker of its capability, streams shell output to step logs, then deploys once', async () => {
    await pipeline({
      shell: [{ name: 'lint', run: 'echo linting; echo "2 files ok"' }, { name: 'unit', run: 'for i in 1 2 3; do echo "test $i passed"; done' }],
      docker: [{ name: 'integration', image: 'node:20', run: 'echo "in $IMAGE"' }],
    });
    const run = await engine.drover.start(ciPipeline, { repo, commit: 'abc123', environment: 'staging' });
    expect(await run.result({ timeoutMs: 20_000 })).toEqual({ environment: 'staging', commit: 'abc123', jobs: 3 });

    const rows = await stepRows(run.id);
    const ranOn = Object.fromEntries(rows.map((r) => [r.name, r.worker_id]));
    expect(ranOn['checkout']).toBe(workers.default.id);
    expect(ranOn['deploy']).toBe(workers.default.id);
    expect(ranOn['shell[0]']).toBe(workers.shell.id);
    expect(ranOn['shell[1]']).toBe(workers.shell.id);
    expect(ranOn['docker[0]']).toBe(workers.docker.id);

    expect(await logsOf(run.id, 'shell[1]')).toEqual(['$ for i in 1 2 3; do echo "test $i passed"; done', 'test 1 passed', 'test 2 passed', 'test 3 passed']);
    expect(await logsOf(run.id, 'docker[0]')).toContain('in node:20');
    expect(await logsOf(run.id, 'checkout')).toContain('checked out abc123');
    expect(await logsOf(run.id, 'checkout')).toContain('matrix: 2 shell job(s), 1 docker job(s)');

    expect(await engine.sql.query(`SELECT environment, commit, jobs FROM example_ci.deployments WHERE run_id = $1`, [run.id]))
      .toEqual([{ environment: 'staging', commit: 'abc123', jobs: 3 }]);
  });

  it('fails the run naming the failing job, skips deploy, and keeps the failing output in its log', async () => {
    await pipeline({
      shell: [{ name: 'lint', run: 'echo ok' }, { name: 'unit', run: 'echo "expected 2, got 3" >&2; exit 3' }],
      docker: [{ name: 'integration', image: 'node:20', run: 'echo fine' }],
    });
    const run = await engine.drover.start(ciPipeline, { repo, commit: 'bad1', environment: 'production' });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    expect(done.error!.failedSteps).toContain('shell[1]');
    expect(done.error).toMatchObject({ step: 'shell[1]', code: 'non_retryable' });
    const step = (name: string) => done.steps.find((s) => s.name === name)!;
    // The map step names its failed element and the job; the element row keeps the job's error.
    expect(step('shell').status).toBe('failed');
    expect(JSON.stringify(step('shell').error)).toContain('job \\"unit\\" exited with code 3: stderr: expected 2, got 3');
    const { items: [element] } = await engine.drover.listMapElements(run.id, 'shell', { status: 'failed' });
    expect([element.name, element.status]).toEqual(['shell[1]', 'failed']);
    expect((element.error as { message: string }).message).toBe('job "unit" exited with code 3: stderr: expected 2, got 3');
    expect((await stepRows(run.id)).find((r) => r.name === 'shell[0]')!.status).toBe('succeeded');
    expect(step('docker').status).toBe('succeeded');
    expect(step('deploy').status).toBe('skipped');
    expect(await logsOf(run.id, 'shell[1]')).toEqual(['$ echo "expected 2, got 3" >&2; exit 3', 'stderr: expected 2, got 3']);
    expect(await engine.sql.query(`SELECT * FROM example_ci.deployments WHERE run_id = $1`, [run.id])).toEqual([]);
    expect((await stepRows(run.id)).find((r) => r.name === 'shell[1]')!.worker_id).toBe(workers.shell.id);
  });

  it('refuses a repository without a pipeline file at checkout, without retrying', async () => {
    const run = await engine.drover.start(ciPipeline, { repo, commit: 'nofile' });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    const checkout = done.steps.find((s) => s.name === 'checkout')!;
    expect(checkout.attempts).toBe(1);
    expect(JSON.stringify(checkout.error)).toContain('.drover-ci.json is missing or not JSON');
    expect(done.steps.find((s) => s.name === 'deploy')!.status).toBe('skipped');
  });
});
