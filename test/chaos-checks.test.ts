import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Pool } from 'pg';
import { checkInvariants, checkPostgresLog } from '../chaos/checks';
import type { RunRecord } from '../chaos/producer';
import { CHAOS_SCHEMA_SQL, CHAOS_WORKFLOWS } from '../chaos/workflows';
import { Drover } from '../src/drover';
import { QueueBackend } from '../src/queue/queue-backend';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';

// The chaos checker must itself catch what it claims to: a suite that cannot fail proves nothing.
describe('chaos invariant checker', () => {
  let drover: Drover;
  let queues: QueueBackend;
  let pool: Pool;

  beforeEach(async () => {
    const databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace('chk');
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    queues = new QueueBackend({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    pool = new Pool({ connectionString: databaseUrl, max: 2 });
    await pool.query(CHAOS_SCHEMA_SQL);
    await drover.registerWorkflows(CHAOS_WORKFLOWS);
  });
  afterEach(async () => {
    await pool.end();
    await drover.close();
    await queues.close();
  });

  const record = (key: string, kind: RunRecord['kind'], ...ids: string[]): RunRecord => ({ key, kind, ids: new Set(ids), submissions: 1 });

  it('flags a lost run, a wrong outcome, a second success, a success after cancel, a split key and a stale job', async () => {
    const open = await drover.createRun({ workflow: 'chaos-chain', idempotencyKey: 'k-open' });
    const cancelled = await drover.createRun({ workflow: 'chaos-probe', idempotencyKey: 'k-cancel' });
    await drover.cancelRun(cancelled.id);
    const [step] = await pool.query(`SELECT id, generation FROM drover.steps WHERE run_id = $1`, [cancelled.id]).then((r) => r.rows);
    await pool.query(`INSERT INTO drover.audit_events (type, run_id, step_id, actor) VALUES ('step.succeeded', $1, $2, 'test'), ('step.succeeded', $1, $2, 'test')`, [cancelled.id, step.id]);
    await queues.queue('default').add('chaos.work', { stepId: step.id, runId: cancelled.id, generation: step.generation }, { jobId: `${step.id}-g${step.generation}`, delay: 60_000 });

    const result = await checkInvariants(pool, queues, [
      record('k-open', 'chain', open.id),
      record('k-cancel', 'probe', cancelled.id),
      record('k-split', 'chain', open.id, cancelled.id),
    ]);
    const text = result.violations.join('\n');
    expect(result.runsLost).toBe(2); // k-open, and k-split (its first id is the open run)
    expect(result.doubleCompletions).toBe(1);
    expect(text).toMatch(/lost: run .* is pending/);
    expect(text).toMatch(/outcome: k-cancel .* expected succeeded/);
    expect(text).toMatch(/success after cancel/);
    expect(text).toMatch(/idempotency: key k-split answered with 2 different runs/);
    expect(text).toMatch(/queue: default holds delayed job .* of a terminal step/);
  });

  it('passes a clean trail', async () => {
    const result = await checkInvariants(pool, queues, []);
    expect(result.violations).toEqual([]);
  });
});

describe('chaos Postgres log check', () => {
  const DEADLOCK = [
    '2026-11-24 17:00:01.123 UTC [4242] ERROR:  deadlock detected',
    '2026-11-24 17:00:01.123 UTC [4242] DETAIL:  Process 4242 waits for ShareLock on transaction 901; blocked by process 4243.',
    '\tProcess 4243 waits for ShareLock on transaction 900; blocked by process 4242.',
    '2026-11-24 17:00:01.123 UTC [4242] HINT:  See server log for query details.',
  ];
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chaos-log-')); });
  afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

  it('fails a scenario whose part of the log holds a deadlock, and only that one', () => {
    const file = path.join(dir, 'postgres.log');
    fs.writeFileSync(file, `${DEADLOCK.join('\n')}\n`); // an earlier scenario's
    const from = fs.statSync(file).size;
    fs.appendFileSync(file, '2026-11-24 17:00:02.000 UTC [4250] LOG:  checkpoint starting: time\n');
    expect(checkPostgresLog(file, from)).toEqual({ deadlocks: 0, violations: [] });
    fs.appendFileSync(file, `${DEADLOCK.join('\n')}\n`);
    const found = checkPostgresLog(file, from);
    expect(found.deadlocks).toBe(1);
    expect(found.violations[0]).toMatch(/^deadlock: .*ERROR: {2}deadlock detected \| .*DETAIL: {2}Process 4242 waits/);
    expect(checkPostgresLog(file).deadlocks).toBe(2);
  });

  it('passes when there is no log yet', () => {
    expect(checkPostgresLog(path.join(dir, 'missing.log'))).toEqual({ deadlocks: 0, violations: [] });
  });
});
