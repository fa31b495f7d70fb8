import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { waitForEvent } from './helpers/waits';
import { createAgentWorkflows } from '../examples/agent-runs/workflows';
import { agentEntities, agentMigrations, AGENT_MIGRATIONS_TABLE } from '../examples/agent-runs/schema';
import { migrateExample } from '../examples/shared/migrate';

// examples/agent-runs (seed 000, FerrumDeck), on both queue backends.
describeEachBackend('example agent-runs', (backend) => {
  let engine: EngineHarness;
  let agents: ReturnType<typeof createAgentWorkflows>;
  beforeEach(async () => {
    engine = await createEngine(backend);
    await migrateExample(engine.databaseUrl, { entities: agentEntities, migrations: agentMigrations, migrationsTableName: AGENT_MIGRATIONS_TABLE });
    agents = createAgentWorkflows({ signal: (runId, name, payload) => engine.drover.signal(runId, name, payload, { actor: 'policy' }) });
    await engine.startWorker({ workflows: agents.workflows, entities: agentEntities, concurrency: 4 });
  });
  afterEach(async () => { await engine.close(); });

  const budget = (workspace: string, limit: number) => engine.sql.query(`INSERT INTO example_agents.budgets (workspace, limit_tokens) VALUES ($1, $2)`, [workspace, limit]);
  const spent = async (workspace: string) => (await engine.sql.query<{ spent_tokens: number }>(`SELECT spent_tokens FROM example_agents.budgets WHERE workspace = $1`, [workspace]))[0].spent_tokens;
  const charges = (runId: string) => engine.sql.query<{ step: string; attempt: number; tokens: number }>(`SELECT step, attempt, tokens FROM example_agents.charges WHERE run_id = $1 ORDER BY step`, [runId]);
  const toolCalls = (runId: string) => engine.sql.query<{ tool: string; decision: string; decided_by: string; result: unknown }>(
    `SELECT tool, decision, decided_by, result FROM example_agents.tool_calls WHERE run_id = $1 ORDER BY call_id`, [runId]);

  it('calls the model, runs allowed tools, blocks and records a threat, waits for approval of a risky tool, audits each call and charges each step once', async () => {
    await budget('acme', 1000);
    // 8 words: the model costs 80 tokens; search + delete run (5 each), run is blocked; the answer costs 20.
    const run = await engine.drover.start(agents.agentRun, { workspace: 'acme', prompt: 'search docs then delete stale and run rm' }, { workspace: 'acme' });
    await waitForEvent(engine, run.id, 'step.waiting', 'approval');
    // The threat is recorded before anyone approves anything; the allowed tool already ran.
    expect(await engine.sql.query(`SELECT tool, reason FROM example_agents.threats WHERE run_id = $1`, [run.id])).toEqual([{ tool: 'exec_shell', reason: 'arbitrary code execution' }]);
    await eventually(async () => (await toolCalls(run.id)).some((c) => c.tool === 'web_search'), 10_000, 'web_search audited');
    expect((await toolCalls(run.id)).some((c) => c.tool === 'delete_records')).toBe(false);
    expect((await engine.drover.getRun(run.id)).status).toBe('running');

    await engine.drover.signal(run.id, 'approval', { approved: true, by: 'ada' });
    expect(await run.result({ timeoutMs: 20_000 })).toEqual({
      text: 'I will use 3 tool(s).', results: ['web_search(docs) ok', 'delete_records(stale) ok'], tokensLeft: 1000 - 80 - 5 - 5 - 20,
    });
    expect(await toolCalls(run.id)).toEqual([
      { tool: 'web_search', decision: 'allowed', decided_by: 'policy', result: { tool: 'web_search', result: 'web_search(docs) ok' } },
      { tool: 'delete_records', decision: 'approved', decided_by: 'ada', result: { tool: 'delete_records', result: 'delete_records(stale) ok' } },
      { tool: 'exec_shell', decision: 'blocked', decided_by: 'policy', result: null },
    ]);
    expect(await spent('acme')).toBe(110);
    expect(await charges(run.id)).toEqual([
      { step: 'answer', attempt: 1, tokens: 20 }, { step: 'approved-tools[0]', attempt: 1, tokens: 5 },
      { step: 'model', attempt: 1, tokens: 80 }, { step: 'tools[0]', attempt: 1, tokens: 5 },
    ]);
  });

  it('charges a retried tool once: the failed attempt\'s charge rolls back with it', async () => {
    await budget('acme', 1000);
    const run = await engine.drover.start(agents.agentRun, { workspace: 'acme', prompt: 'flaky quote' }, { workspace: 'acme' });
    // No risky tool: the policy approves itself and nobody waits.
    const out = await run.result({ timeoutMs: 20_000 });
    expect(out.results).toEqual(['flaky_lookup(quote) ok']);
    const rows = await charges(run.id);
    expect(rows).toEqual([{ step: 'answer', attempt: 1, tokens: 20 }, { step: 'model', attempt: 1, tokens: 20 }, { step: 'tools[0]', attempt: 2, tokens: 5 }]);
    expect(await spent('acme')).toBe(45);
    const [element] = (await engine.drover.listMapElements(run.id, 'tools')).items;
    expect([element.name, element.attempts]).toEqual(['tools[0]', 2]);
  });

  it('fails the run with budget_exceeded when the workspace\'s budget is spent, charging nothing', async () => {
    await budget('tiny', 50);
    const run = await engine.drover.start(agents.agentRun, { workspace: 'tiny', prompt: 'search one two three four five' }, { workspace: 'tiny' }); // 60 tokens
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    expect(done.error).toMatchObject({ step: 'model', code: 'budget_exceeded' });
    const model = done.steps.find((s) => s.name === 'model')!;
    expect(model.attempts).toBe(1);
    expect(model.error).toMatchObject({ code: 'budget_exceeded', message: 'budget_exceeded: workspace "tiny" has 50 token(s) left, the step needs 60' });
    expect(done.steps.filter((s) => s.status === 'skipped').map((s) => s.name).sort()).toEqual(['answer', 'approval', 'approved-tools', 'policy', 'tools']);
    expect(await spent('tiny')).toBe(0);
    expect(await charges(run.id)).toEqual([]);

    // A run may not charge another workspace's budget by naming it in its input.
    await budget('victim', 1000);
    const sneaky = await engine.drover.start(agents.agentRun, { workspace: 'victim', prompt: 'search x' }, { workspace: 'tiny' });
    const refused = await engine.drover.waitForRun(sneaky.id, { timeoutMs: 20_000 });
    expect(refused.steps.find((s) => s.name === 'model')!.error).toMatchObject({ code: 'workspace_mismatch' });
    expect(await spent('victim')).toBe(0);
  });

  it('runs one agent run per workspace at a time; another workspace is not held up', async () => {
    await budget('a', 1000);
    await budget('b', 1000);
    const first = await engine.drover.start(agents.agentRun, { workspace: 'a', prompt: 'email boss' }, { workspace: 'a' });
    await waitForEvent(engine, first.id, 'step.waiting', 'approval');
    const second = await engine.drover.start(agents.agentRun, { workspace: 'a', prompt: 'search news' }, { workspace: 'a' });
    const other = await engine.drover.start(agents.agentRun, { workspace: 'b', prompt: 'search news' }, { workspace: 'b' });
    expect((await other.result({ timeoutMs: 20_000 })).results).toEqual(['web_search(news) ok']);
    const waiting = await engine.drover.getRun(second.id);
    expect(waiting.status).toBe('pending');
    expect(await charges(second.id)).toEqual([]);

    await engine.drover.signal(first.id, 'approval', { approved: false, by: 'ada' });
    expect((await first.result({ timeoutMs: 20_000 })).results).toEqual(['denied']);
    expect(await toolCalls(first.id)).toEqual([{ tool: 'send_email', decision: 'denied', decided_by: 'ada', result: null }]);
    expect((await second.result({ timeoutMs: 20_000 })).results).toEqual(['web_search(news) ok']);
  });
});
