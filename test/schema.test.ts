import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { createDataSource, migrate } from '../src/db/data-source';
import { ApiKeyEntity, AuditEventEntity, RunEntity, StepEntity, WorkerEntity, WorkflowEntity } from '../src/entities';
import { MIGRATIONS } from '../src/migrations';
import { createEmptyDatabase, createTestDatabase } from './helpers/env';

/** Every migration by name, oldest first; each file's name must carry its class's timestamp. */
const ALL_MIGRATIONS = MIGRATIONS.map((m) => new m().name);

describe('migrations', () => {
  it('are listed oldest first, with the first one being the initial schema', () => {
    expect(ALL_MIGRATIONS[0]).toBe('InitialSchema1763900000000');
    const stamps = ALL_MIGRATIONS.map((n) => Number(n.match(/\d{13}$/)?.[0]));
    expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
    expect(new Set(stamps).size).toBe(stamps.length);
  });

  it('apply on an empty database and are idempotent', async () => {
    const url = await createEmptyDatabase();
    const first = await migrate(url, { queueBackend: 'postgres' });
    expect(first).toEqual(ALL_MIGRATIONS);
    expect(await migrate(url, { queueBackend: 'postgres' })).toEqual([]);
    const ds = createDataSource({ url });
    await ds.initialize();
    try {
      const tables = await ds.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'drover' AND table_name NOT LIKE 'audit\\_events\\_p%' ORDER BY 1`);
      expect(tables.map((t: { table_name: string }) => t.table_name)).toEqual(['api_keys', 'audit_events', 'flow_entries', 'flow_rate_wakes', 'flow_starts', 'runs', 'schedules', 'sessions', 'signals', 'step_logs', 'steps', 'workers', 'workflows']);
      const bullmq = await ds.query(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'bullmq'`);
      expect(bullmq[0].n).toBeGreaterThan(0);
    } finally {
      await ds.destroy();
    }
  });

  it('run concurrently from several processes only once', async () => {
    const url = await createEmptyDatabase();
    const results = await Promise.all([1, 2, 3].map(() => migrate(url, { queueBackend: 'redis' })));
    expect(results.flat()).toEqual(ALL_MIGRATIONS);
  });
});

describe('entities', () => {
  let ds: DataSource;
  beforeAll(async () => {
    ds = createDataSource({ url: await createTestDatabase() });
    await ds.initialize();
  });
  afterAll(() => ds.destroy());

  async function saveRun(overrides: Partial<RunEntity> = {}): Promise<RunEntity> {
    return ds.getRepository(RunEntity).save({
      id: randomUUID(), workflow: 'crawl', workflowVersion: 'v1', definition: { name: 'crawl', steps: [] },
      status: 'pending', input: { url: 'https://example.com', nested: { n: [1, 2] } }, output: null, error: null,
      workspace: 'default', priority: 0, delayMs: 0, idempotencyKey: null, openSteps: 1, failedSteps: 0,
      ...overrides,
    });
  }

  it('round-trips a run with jsonb and timestamps', async () => {
    const run = await saveRun();
    const loaded = await ds.getRepository(RunEntity).findOneByOrFail({ id: run.id });
    expect(loaded.input).toEqual({ url: 'https://example.com', nested: { n: [1, 2] } });
    expect(loaded.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(loaded.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    expect(loaded.startedAt).toBeNull();
  });

  it('rejects an invalid run status and an invalid step status', async () => {
    await expect(saveRun({ status: 'exploded' as never })).rejects.toThrow(/runs_status_check/);
    const run = await saveRun();
    await expect(ds.getRepository(StepEntity).save({
      id: randomUUID(), runId: run.id, name: 'a', processor: 'p', queue: 'default', status: 'lost' as never,
      dependsOn: [], depsRemaining: 0, maxAttempts: 3, options: { backoff: { type: 'fixed', delayMs: 0 }, delayMs: 0, timeoutMs: null, priority: 0 },
    })).rejects.toThrow(/steps_status_check/);
  });

  it('keeps finished_at in step with a terminal status (the unfinished indexes rely on it)', async () => {
    await expect(saveRun({ status: 'succeeded' })).rejects.toThrow(/runs_timestamps_check/);
    await expect(saveRun({ status: 'running', finishedAt: new Date() })).rejects.toThrow(/runs_timestamps_check/);
    await expect(saveRun({ status: 'failed', finishedAt: new Date() })).resolves.toBeDefined();
  });

  it('round-trips a step with its dependency array and options', async () => {
    const run = await saveRun();
    const step = await ds.getRepository(StepEntity).save({
      id: randomUUID(), runId: run.id, name: 'parse', processor: 'html.parse', queue: 'cpu', status: 'pending',
      dependsOn: ['fetch', 'robots'], depsRemaining: 2, maxAttempts: 3,
      options: { backoff: { type: 'exponential', delayMs: 200 }, delayMs: 0, timeoutMs: 5000, priority: 1 },
    });
    const loaded = await ds.getRepository(StepEntity).findOneByOrFail({ id: step.id });
    expect(loaded.dependsOn).toEqual(['fetch', 'robots']);
    expect(loaded.options.backoff).toEqual({ type: 'exponential', delayMs: 200 });
    expect(loaded.attempt).toBe(0);
    await expect(ds.getRepository(StepEntity).save({ ...step, id: randomUUID() })).rejects.toThrow(/steps_run_name_key/);
  });

  it('keeps idempotency keys unique per workspace', async () => {
    await saveRun({ idempotencyKey: 'order-1', workspace: 'a' });
    await saveRun({ idempotencyKey: 'order-1', workspace: 'b' });
    await expect(saveRun({ idempotencyKey: 'order-1', workspace: 'a' })).rejects.toThrow(/runs_idempotency_key/);
  });

  it('appends audit events and refuses to update, delete or truncate them', async () => {
    const run = await saveRun();
    const event = await ds.getRepository(AuditEventEntity).save({ type: 'run.created', runId: run.id, stepId: null, actor: 'test', data: { a: 1 } });
    const loaded = await ds.getRepository(AuditEventEntity).findOneByOrFail({ id: event.id });
    expect(loaded.data).toEqual({ a: 1 });
    expect(loaded.at).toBeInstanceOf(Date);
    await expect(ds.query(`UPDATE drover.audit_events SET type = 'x' WHERE id = $1`, [event.id])).rejects.toThrow(/append-only/);
    await expect(ds.query(`DELETE FROM drover.audit_events WHERE id = $1`, [event.id])).rejects.toThrow(/append-only/);
    await expect(ds.query(`TRUNCATE drover.audit_events`)).rejects.toThrow(/append-only/);
    expect(await ds.getRepository(AuditEventEntity).countBy({ runId: run.id })).toBe(1);
  });

  it('round-trips workers, workflows and API keys', async () => {
    const worker = await ds.getRepository(WorkerEntity).save({
      id: 'w-1', hostname: 'host', pid: 42, queues: ['default', 'cpu'], concurrency: 5, version: '0.1.0', status: 'active',
    });
    expect((await ds.getRepository(WorkerEntity).findOneByOrFail({ id: worker.id })).queues).toEqual(['default', 'cpu']);
    await expect(ds.getRepository(WorkerEntity).save({ ...worker, id: 'w-2', status: 'zombie' as never })).rejects.toThrow(/workers_status_check/);

    await ds.getRepository(WorkflowEntity).save({ name: 'crawl', version: 'abc', definition: { steps: [{ name: 'a' }] } });
    const wf = await ds.getRepository(WorkflowEntity).findOneByOrFail({ name: 'crawl', version: 'abc' });
    expect(wf.definition).toEqual({ steps: [{ name: 'a' }] });

    const key = await ds.getRepository(ApiKeyEntity).save({ id: randomUUID(), name: 'ci', prefix: 'abcd1234', hash: 'f'.repeat(64) });
    expect((await ds.getRepository(ApiKeyEntity).findOneByOrFail({ id: key.id })).revokedAt).toBeNull();
    await expect(ds.getRepository(ApiKeyEntity).save({ id: randomUUID(), name: 'x', prefix: 'p2', hash: 'not-a-hash' })).rejects.toThrow(/check/);
  });
});
