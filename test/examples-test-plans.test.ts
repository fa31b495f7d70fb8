import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DataSource } from 'typeorm';
import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, sleep, type EngineHarness } from './helpers/engine';
import { CHECK_ATTEMPTS, createPlan, planRepositories, planSchedule, scheduleExecution, workflows } from '../examples/test-plans/workflows';
import { planEntities, planMigrations, PLAN_MIGRATIONS_TABLE } from '../examples/test-plans/schema';
import { migrateExample } from '../examples/shared/migrate';

/** The service under test, on loopback: `/ok` answers 200, `/down` 503. */
function startService(): Promise<{ server: Server; base: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '/');
    res.writeHead(req.url === '/ok' ? 200 : 503);
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits })));
}

// examples/test-plans (seed 001, Astro), on both queue backends.
describeEachBackend('example test-plans', (backend) => {
  let engine: EngineHarness;
  let ds: DataSource;
  let service: Awaited<ReturnType<typeof startService>>;
  beforeEach(async () => {
    engine = await createEngine(backend);
    await migrateExample(engine.databaseUrl, { entities: planEntities, migrations: planMigrations, migrationsTableName: PLAN_MIGRATIONS_TABLE });
    ds = await new DataSource({ type: 'postgres', url: engine.databaseUrl, entities: planEntities, poolSize: 2 }).initialize();
    service = await startService();
    await engine.startWorker({ workflows, entities: planEntities, concurrency: 4 });
  });
  afterEach(async () => {
    await engine.close();
    await ds.destroy();
    await new Promise((r) => service.server.close(r));
  });

  const results = (executionId: string) => engine.sql.query<{ position: number; name: string; ok: boolean; attempts: number; detail: string }>(
    `SELECT position, name, ok, attempts, detail FROM example_plans.results WHERE execution_id = $1 ORDER BY position`, [executionId]);
  // Each attempt's start, from drover's audit: a short attempt's start rides on its outcome event (`startedAt`), a long one has `step.started`.
  const starts = (runId: string, step: string) => engine.sql.query<{ at: Date; attempt: number }>(
    `SELECT DISTINCT ON ((e.data->>'attempt')::int) COALESCE((e.data->>'startedAt')::timestamptz, e.at) AS at, (e.data->>'attempt')::int AS attempt
     FROM drover.audit_events e JOIN drover.steps s ON s.id = e.step_id
     WHERE e.run_id = $1 AND s.name = $2 AND (e.type = 'step.started' OR e.data ? 'startedAt') ORDER BY (e.data->>'attempt')::int, e.id`, [runId, step]);

  it('runs a plan\'s checks as steps: the flaky one is retried with exponential backoff, results commit with their steps, the execution passes', async () => {
    const plan = await createPlan(ds, { name: 'smoke', checks: [
      { name: 'home', kind: 'http', url: `${service.base}/ok` },
      { name: 'warming-up', kind: 'flaky', failures: 2 },
    ] });
    expect(plan.checks[0]).toEqual({ name: 'home', kind: 'http', url: `${service.base}/ok`, expectStatus: 200 });
    const { execution, run } = await scheduleExecution(engine.drover, ds, plan.id);
    expect(execution).toMatchObject({ status: 'scheduled', trigger: 'at', runId: run.id });

    expect(await run.result({ timeoutMs: 20_000 })).toEqual({ executionId: execution.id, status: 'passed', passed: 2, failed: 0 });
    expect(await results(execution.id)).toEqual([
      { position: 0, name: 'home', ok: true, attempts: 1, detail: 'HTTP 200' },
      { position: 1, name: 'warming-up', ok: true, attempts: 3, detail: 'passed on attempt 3' },
    ]);
    const row = (await planRepositories(ds.manager).executions.findById(execution.id))!;
    expect(row).toMatchObject({ status: 'passed', runId: run.id });
    expect(row.finishedAt!.getTime()).toBeGreaterThanOrEqual(row.startedAt!.getTime());

    // drover's attempts: three starts of the flaky check, 200 ms then 400 ms apart at least (exponential from 200 ms).
    const flaky = await starts(run.id, 'checks[1]');
    expect(flaky.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(flaky[1].at.getTime() - flaky[0].at.getTime()).toBeGreaterThanOrEqual(200);
    expect(flaky[2].at.getTime() - flaky[1].at.getTime()).toBeGreaterThanOrEqual(400);
    const [element] = await engine.sql.query<{ attempt: number; status: string }>(`SELECT attempt, status FROM drover.steps WHERE run_id = $1 AND name = 'checks[1]'`, [run.id]);
    expect(element).toEqual({ attempt: 3, status: 'succeeded' });
    expect(service.hits).toEqual(['/ok']);
  });

  it('fails the execution when a check fails on every attempt; refuses a bad plan and an unknown plan precisely', async () => {
    const plan = await createPlan(ds, { name: 'outage', checks: [{ name: 'api', kind: 'http', url: `${service.base}/down` }, { name: 'ok', kind: 'flaky', failures: 0 }] });
    const { execution, run } = await scheduleExecution(engine.drover, ds, plan.id);
    expect(await run.result({ timeoutMs: 20_000 })).toEqual({ executionId: execution.id, status: 'failed', passed: 1, failed: 1 });
    expect(await results(execution.id)).toEqual([
      { position: 0, name: 'api', ok: false, attempts: CHECK_ATTEMPTS, detail: 'HTTP 503, expected 200' },
      { position: 1, name: 'ok', ok: true, attempts: 1, detail: 'passed on attempt 1' },
    ]);
    expect(service.hits).toEqual(Array(CHECK_ATTEMPTS).fill('/down'));
    expect((await planRepositories(ds.manager).executions.findById(execution.id))!.status).toBe('failed');

    await expect(createPlan(ds, { name: 'bad', checks: [{ name: 'x', kind: 'http', url: 'ftp://example.test/' }] }))
      .rejects.toMatchObject({ code: 'invalid_plan', message: 'invalid plan: checks.0.url: only http and https' });
    await expect(createPlan(ds, { name: 'empty', checks: [] })).rejects.toMatchObject({ code: 'invalid_plan' });
    await expect(scheduleExecution(engine.drover, ds, '00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({ code: 'plan_not_found' });

    // An execution moved to another plan before its run started: the run's first step refuses it (not retried), the onFailure step fails the execution.
    const gone = await createPlan(ds, { name: 'gone', checks: [{ name: 'ok', kind: 'flaky', failures: 0 }] });
    const later = await scheduleExecution(engine.drover, ds, gone.id, new Date(Date.now() + 800));
    await engine.sql.query(`UPDATE example_plans.executions SET plan_id = $1 WHERE id = $2`, [plan.id, later.execution.id]);
    const done = await engine.drover.waitForRun(later.run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    expect(done.steps.find((s) => s.name === 'start')!.error).toMatchObject({ code: 'execution_not_found' });
    await eventually(async () => (await planRepositories(ds.manager).executions.findById(later.execution.id))!.status === 'failed', 10_000, 'the execution failed');
  });

  it('starts an execution at the time it was scheduled for, not before', async () => {
    const plan = await createPlan(ds, { name: 'nightly', checks: [{ name: 'home', kind: 'http', url: `${service.base}/ok` }] });
    const at = new Date(Date.now() + 1500);
    const { execution, run } = await scheduleExecution(engine.drover, ds, plan.id, at);
    await sleep(700);
    expect((await planRepositories(ds.manager).executions.findById(execution.id))!.status).toBe('scheduled');
    expect(service.hits).toEqual([]);
    expect((await run.result({ timeoutMs: 20_000 })).status).toBe('passed');
    const [first] = await starts(run.id, 'start');
    expect(first.at.getTime()).toBeGreaterThanOrEqual(at.getTime());
    const row = (await planRepositories(ds.manager).executions.findById(execution.id))!;
    expect(row.scheduledFor.toISOString()).toBe(at.toISOString());
    expect(row.startedAt!.getTime()).toBeGreaterThanOrEqual(at.getTime());
  });

  it('runs a plan from a cron schedule every 2 s: exactly one run and one execution per tick, with two ticking processes', async () => {
    const plan = await createPlan(ds, { name: 'every-2s', checks: [{ name: 'home', kind: 'http', url: `${service.base}/ok` }] });
    await engine.drover.createSchedule(planSchedule('plan-every-2s', plan, '*/2 * * * * *'));
    const ticking = [engine.drover.startMaintenance({ retention: false }), engine.drover.startMaintenance({ retention: false })];
    const runsOf = () => engine.sql.query<{ id: string; key: string; status: string }>(
      `SELECT id, idempotency_key AS key, status FROM drover.runs WHERE idempotency_key LIKE 'schedule:plan-every-2s:%' ORDER BY idempotency_key`);
    try {
      await eventually(async () => (await runsOf()).filter((r) => r.status === 'succeeded').length >= 3, 15_000, 'three scheduled runs');
    } finally {
      await engine.drover.pauseSchedule('plan-every-2s');
      await Promise.all(ticking.map((m) => m.stop()));
    }
    const runs = await runsOf();
    await Promise.all(runs.map((r) => engine.drover.waitForRun(r.id, { timeoutMs: 20_000 })));
    const fireAts = runs.map((r) => Date.parse(r.key.slice('schedule:plan-every-2s:'.length)));
    // One run per tick: fire times are distinct and 2 s apart, none skipped.
    for (let i = 1; i < fireAts.length; i++) expect(fireAts[i] - fireAts[i - 1]).toBe(2000);
    const executions = await planRepositories(ds.manager).executions.findMany({ planId: plan.id }, 'scheduledFor');
    expect(executions.map((e) => e.runId).sort()).toEqual(runs.map((r) => r.id).sort());
    expect(executions.every((e) => e.trigger === 'schedule' && e.status === 'passed')).toBe(true);
    expect(await planRepositories(ds.manager).results.count({ ok: true })).toBe(runs.length);
  });
});
