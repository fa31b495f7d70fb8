/**
 * Test plans of seed 001 (Astro) on drover: a plan's checks run as a map step
 * (one step per check, each retried with exponential backoff), each result
 * written in its step's transaction, the execution row updated from the run's
 * outcome. Executions start at a given time (`runAt` on the run) or from a
 * cron schedule.
 */
import type { DataSource, EntityManager } from 'typeorm';
import { z } from 'zod';
import type { Drover } from '../../src/drover';
import { DroverError } from '../../src/errors';
import { workflow } from '../../src/workflows/builder';
import { NewPlanSchema, runCheck, type Check } from './checks';
import { typeormRepository } from './repository';
import { CheckResultEntity, ExecutionEntity, PlanEntity, type Execution, type Plan } from './schema';

/** Attempts of one check (the last failing attempt records `ok: false` instead of failing the run). */
export const CHECK_ATTEMPTS = 4;
/** Exponential backoff between a check's attempts: 200 ms, 400 ms, 800 ms. */
export const CHECK_BACKOFF = { type: 'exponential' as const, delayMs: 200 };

/** The example's repositories on one manager (a data source's, or a step's transaction). */
export function planRepositories(m: EntityManager) {
  return { plans: typeormRepository(m, PlanEntity), executions: typeormRepository(m, ExecutionEntity), results: typeormRepository(m, CheckResultEntity) };
}

const wf = workflow('test-plan', {
  // `executionId` is set by `scheduleExecution`; a cron run has none and makes its execution itself.
  input: z.object({ planId: z.string().uuid(), executionId: z.string().uuid().optional() }),
});

const started = wf.step('start', { attempts: 3, backoff: { type: 'fixed', delayMs: 100 } }, (ctx) => ctx.transaction(async (m) => {
  const repos = planRepositories(m);
  const plan = await repos.plans.findById(ctx.input.planId);
  if (!plan) throw new DroverError('plan_not_found', `test plan ${ctx.input.planId} not found`, { retryable: false });
  let execution: Execution;
  if (ctx.input.executionId) {
    const found = await repos.executions.findById(ctx.input.executionId);
    if (!found || found.planId !== plan.id) throw new DroverError('execution_not_found', `execution ${ctx.input.executionId} of plan ${plan.id} not found`, { retryable: false });
    execution = found;
  } else {
    execution = await repos.executions.create({ planId: plan.id, status: 'scheduled', trigger: 'schedule', scheduledFor: new Date(), startedAt: null, finishedAt: null, runId: null });
  }
  await repos.executions.update(execution.id, { status: 'running', startedAt: new Date(), runId: ctx.run.id });
  ctx.log(`plan "${plan.name}": ${plan.checks.length} check(s)`);
  return { executionId: execution.id, checks: plan.checks.map((check, position) => ({ position, check })) };
}));

const checked = wf.map('checks', { over: started, path: 'checks', attempts: CHECK_ATTEMPTS, backoff: CHECK_BACKOFF, timeoutMs: 10_000, concurrency: 4 }, async (ctx) => {
  const { position, check } = ctx.item as { position: number; check: Check };
  const outcome = await runCheck(check, ctx.step.attempt, ctx.signal);
  const executionId = ctx.parents.start.executionId;
  // The result row is written in the step's transaction and commits only with its success: a failed attempt's row
  // rolls back with the throw (one row per check: `UNIQUE (execution_id, position)` would refuse a second).
  await ctx.transaction(async (m) => {
    await planRepositories(m).results.create({ executionId, position, name: check.name, kind: check.kind, ok: outcome.ok, attempts: ctx.step.attempt, detail: outcome.detail });
    if (!outcome.ok && ctx.step.attempt < CHECK_ATTEMPTS) throw new Error(`check "${check.name}": ${outcome.detail}`); // retried with backoff
  });
  return { position, name: check.name, ok: outcome.ok, attempts: ctx.step.attempt, detail: outcome.detail };
});

const finished = wf.step('finish', { parents: [started, checked] }, (ctx) => ctx.transaction(async (m) => {
  const results = ctx.parents.checks;
  const failed = results.filter((r) => !r.ok).length;
  const status = failed === 0 ? 'passed' : 'failed';
  await planRepositories(m).executions.update(ctx.parents.start.executionId, { status, finishedAt: new Date() });
  return { executionId: ctx.parents.start.executionId, status, passed: results.length - failed, failed };
}));

wf.onFailure(async (ctx) => {
  // The run failed before `finish` (an unknown plan, a step out of attempts): its execution, if any, failed with it.
  await ctx.transaction((m) => m.query(
    `UPDATE example_plans.executions SET status = 'failed', finished_at = now() WHERE (run_id = $1 OR id = $2) AND status IN ('scheduled', 'running')`,
    [ctx.run.id, ctx.input.executionId ?? null]));
  return { failed: true };
});

/** The `test-plan` workflow: run it with `{ planId, executionId? }`. */
export const testPlan = wf.output(finished);
export const workflows = [testPlan];

/** A recurring execution of a plan: a drover schedule of `test-plan` (five cron fields, or six with seconds first). */
export function planSchedule(name: string, plan: Pick<Plan, 'id'>, cron: string, timezone?: string) {
  return { name, workflow: testPlan.name, cron, input: { planId: plan.id }, ...(timezone ? { timezone } : {}) };
}

/** Stores a new plan; its shape is checked first (`invalid_plan` with the field that is wrong). */
export async function createPlan(ds: DataSource, input: unknown): Promise<Plan> {
  const parsed = NewPlanSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DroverError('invalid_plan', `invalid plan: ${issue.path.join('.') || '(root)'}: ${issue.message}`, { retryable: false });
  }
  return planRepositories(ds.manager).plans.create({ name: parsed.data.name, checks: parsed.data.checks });
}

/**
 * Schedules one execution of a plan at `at` (now when in the past): the
 * execution row (`scheduled`) and a `test-plan` run delayed until then, keyed
 * by the execution so a retried call starts one run.
 */
export async function scheduleExecution(drover: Drover, ds: DataSource, planId: string, at: Date = new Date()) {
  const plan = await planRepositories(ds.manager).plans.findById(planId);
  if (!plan) throw new DroverError('plan_not_found', `test plan ${planId} not found`, { retryable: false });
  const execution = await planRepositories(ds.manager).executions.create({ planId, status: 'scheduled', trigger: 'at', scheduledFor: at, startedAt: null, finishedAt: null, runId: null });
  const run = await drover.start(testPlan, { planId, executionId: execution.id }, { runAt: at, idempotencyKey: `test-plan-execution:${execution.id}` });
  return { execution: await planRepositories(ds.manager).executions.update(execution.id, { runId: run.id }), run };
}
