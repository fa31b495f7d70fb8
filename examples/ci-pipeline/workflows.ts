/**
 * The CI pipeline of seed 003 (Strøm) on drover: checkout → a build/test
 * matrix decided after checkout (two map steps, one per capability) → deploy.
 *
 * Steps are routed by capability with the step's `queue`: a worker started
 * with `--queues shell` takes only shell jobs, one with `--queues docker` only
 * docker jobs, and `default` takes checkout and deploy.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';
import { z } from 'zod';
import { NonRetryableError } from '../../src/errors';
import { workflow } from '../../src/workflows/builder';
import { runJob } from './shell';

/** A deploy the pipeline made: one row per successful run, written in the deploy step's transaction. */
export interface Deployment { id: string; runId: string; environment: string; commit: string; jobs: number }
export const DeploymentEntity = new EntitySchema<Deployment>({
  name: 'CiDeployment', tableName: 'deployments', schema: 'example_ci',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    runId: { name: 'run_id', type: 'uuid', unique: true },
    environment: { type: 'text' },
    commit: { type: 'text' },
    jobs: { type: 'int' },
  },
});

export class CreateCiDeployments1765800000000 implements MigrationInterface {
  name = 'CreateCiDeployments1765800000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS example_ci`);
    await q.query(`CREATE TABLE example_ci.deployments (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), run_id uuid NOT NULL UNIQUE,
      environment text NOT NULL, commit text NOT NULL, jobs int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE example_ci.deployments`);
  }
}

export const ciEntities = [DeploymentEntity];
export const ciMigrations = [CreateCiDeployments1765800000000];
export const CI_MIGRATIONS_TABLE = 'example_ci_migrations';

/** The pipeline file a repository carries: its matrix, read after checkout. */
const PipelineFile = z.object({
  shell: z.array(z.object({ name: z.string().min(1).max(100), run: z.string().min(1).max(10_000) })).max(100).default([]),
  docker: z.array(z.object({ name: z.string().min(1).max(100), image: z.string().min(1).max(200), run: z.string().min(1).max(10_000) })).max(100).default([]),
});
export const PIPELINE_FILE = '.drover-ci.json';

type ShellJob = { name: string; run: string };
type DockerJob = { name: string; image: string; run: string };
type JobResult = { job: string; exitCode: 0; lines: number };

/** Where a run's checkout lives (workers share this machine's filesystem in the example). */
export const workspaceOf = (runId: string) => join(tmpdir(), 'drover-ci', runId);

const wf = workflow('ci-pipeline', {
  input: z.object({ repo: z.string().min(1), commit: z.string().min(1).max(64), environment: z.string().min(1).max(64).default('staging') }),
});

const checkout = wf.step('checkout', { attempts: 2, backoff: { type: 'fixed', delayMs: 100 }, timeoutMs: 60_000 }, async (ctx) => {
  const workspace = workspaceOf(ctx.run.id);
  await rm(workspace, { recursive: true, force: true });
  await mkdir(workspace, { recursive: true });
  // "Cloning": a local directory stands for the repository (no network in the example).
  await runJob('checkout', 'cp -R "$REPO/." "$WORKSPACE" && echo "checked out $COMMIT" && ls -A "$WORKSPACE"',
    { cwd: workspace, env: { REPO: ctx.input.repo, WORKSPACE: workspace, COMMIT: ctx.input.commit }, log: ctx.log, signal: ctx.signal });
  let file: unknown;
  try {
    file = JSON.parse(await readFile(join(workspace, PIPELINE_FILE), 'utf8'));
  } catch (error) {
    throw new NonRetryableError(`${PIPELINE_FILE} is missing or not JSON: ${(error as Error).message}`);
  }
  const parsed = PipelineFile.safeParse(file);
  if (!parsed.success) throw new NonRetryableError(`${PIPELINE_FILE} is not a pipeline: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  ctx.log(`matrix: ${parsed.data.shell.length} shell job(s), ${parsed.data.docker.length} docker job(s)`);
  const shell: ShellJob[] = parsed.data.shell;
  const docker: DockerJob[] = parsed.data.docker;
  return { workspace, shell, docker };
});

const shellJobs = wf.map('shell', { over: checkout, path: 'shell', queue: 'shell', attempts: 1, timeoutMs: 120_000, concurrency: 4 }, async (ctx): Promise<JobResult> => {
  const job = ctx.item as ShellJob;
  return runJob(job.name, job.run, { cwd: ctx.parents.checkout.workspace, log: ctx.log, signal: ctx.signal });
});

const dockerJobs = wf.map('docker', { over: checkout, path: 'docker', queue: 'docker', attempts: 1, timeoutMs: 120_000, concurrency: 2 }, async (ctx): Promise<JobResult> => {
  const job = ctx.item as DockerJob;
  // No container runtime on the example's machine: the job runs under sh with the image named in its environment.
  ctx.log(`docker run --rm -v $WORKSPACE:/src ${job.image} (simulated with sh -c)`);
  return runJob(job.name, job.run, { cwd: ctx.parents.checkout.workspace, env: { IMAGE: job.image }, log: ctx.log, signal: ctx.signal });
});

const deploy = wf.step('deploy', { parents: [checkout, shellJobs, dockerJobs] }, async (ctx) => {
  const jobs = ctx.parents.shell.length + ctx.parents.docker.length;
  await runJob('deploy', 'echo "deploying $COMMIT to $ENVIRONMENT"', { cwd: ctx.parents.checkout.workspace, env: { COMMIT: ctx.input.commit, ENVIRONMENT: ctx.input.environment }, log: ctx.log, signal: ctx.signal });
  // Exactly once: the row commits with the step's success (a retried deploy rolls the earlier attempt's row back).
  // Plain SQL through the manager, so a `drover worker --module` (which cannot be handed entities) runs it too.
  await ctx.transaction((m) => m.query(`INSERT INTO example_ci.deployments (run_id, environment, commit, jobs) VALUES ($1, $2, $3, $4)`,
    [ctx.run.id, ctx.input.environment, ctx.input.commit, jobs]));
  await rm(ctx.parents.checkout.workspace, { recursive: true, force: true });
  return { environment: ctx.input.environment, commit: ctx.input.commit, jobs };
});

// A failed pipeline still removes its checkout.
wf.onFailure(async (ctx) => {
  await rm(workspaceOf(ctx.run.id), { recursive: true, force: true });
});

export const ciPipeline = wf.output(deploy);
export const workflows = [ciPipeline];

