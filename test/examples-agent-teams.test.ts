import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { createTeamWorkflows, TOOL_TIMEOUT_MS } from '../examples/agent-teams/workflows';
import { loadTask, TASK_WITH_TEAM_SQL, type Sql } from '../examples/agent-teams/queries';
import { teamEntities, teamMigrations, TEAM_MIGRATIONS_TABLE } from '../examples/agent-teams/schema';
import { migrateExample } from '../examples/shared/migrate';

// examples/agent-teams (seed 004, ModelScan), on both queue backends.
describeEachBackend('example agent-teams', (backend) => {
  let engine: EngineHarness;
  let teams: ReturnType<typeof createTeamWorkflows>;
  let agent: Record<'lead' | 'researcher' | 'builder', string>;
  let teamId: string;
  beforeEach(async () => {
    engine = await createEngine(backend);
    await migrateExample(engine.databaseUrl, { entities: teamEntities, migrations: teamMigrations, migrationsTableName: TEAM_MIGRATIONS_TABLE });
    teams = createTeamWorkflows();
    const ids = await engine.sql.query<{ id: string; name: string }>(`INSERT INTO example_teams.agents (name, mode, capabilities) VALUES
      ('ada', 'llm', '["plan"]'), ('bob', 'llm', '["search"]'), ('cy', 'tool', '["compile"]') RETURNING id, name`);
    const byName = Object.fromEntries(ids.map((r) => [r.name, r.id]));
    agent = { lead: byName.ada, researcher: byName.bob, builder: byName.cy };
    [{ id: teamId }] = await engine.sql.query<{ id: string }>(`INSERT INTO example_teams.teams (name, description) VALUES ('core', 'the core team') RETURNING id`);
    await engine.sql.query(`INSERT INTO example_teams.team_members (team_id, agent_id, role) VALUES ($1, $2, 'lead'), ($1, $3, 'researcher'), ($1, $4, 'builder')`,
      [teamId, agent.lead, agent.researcher, agent.builder]);
  });
  afterEach(async () => { await engine.close(); });

  const newTask = async (title: string, priority = 0) =>
    (await engine.sql.query<{ id: string }>(`INSERT INTO example_teams.tasks (team_id, title, priority) VALUES ($1, $2, $3) RETURNING id`, [teamId, title, priority]))[0].id;
  const task = async (id: string) => (await engine.sql.query<{ status: string; run_id: string; agent_id: string; output: unknown; error: string | null }>(
    `SELECT status, run_id, agent_id, output, error FROM example_teams.tasks WHERE id = $1`, [id]))[0];
  const messages = (taskId: string) => engine.sql.query<{ from_agent: string; to_agent: string; kind: string; body: string }>(
    `SELECT from_agent, to_agent, kind, body FROM example_teams.messages WHERE task_id = $1 ORDER BY kind, to_agent, from_agent`, [taskId]);
  const toolRuns = (taskId: string) => engine.sql.query<{ agent_id: string; tool: string; status: string; error: string | null; timeout_ms: number; run_id: string; took_ms: number | null }>(
    `SELECT agent_id, tool, status, error, timeout_ms, run_id, (extract(epoch FROM finished_at - started_at) * 1000)::int AS took_ms
     FROM example_teams.tool_executions WHERE task_id = $1 ORDER BY tool`, [taskId]);
  const sortBy = <T>(rows: T[], key: (r: T) => string) => [...rows].sort((a, b) => key(a).localeCompare(key(b)));

  it('runs a task: the lead delegates to each member in a child run, each tool execution and message is recorded, the task completes', async () => {
    await engine.startWorker({ workflows: teams.workflows, entities: teamEntities, concurrency: 4 });
    const taskId = await newTask('login page');
    const run = await engine.drover.start(teams.teamTask, { taskId });
    expect(await run.result({ timeoutMs: 20_000 })).toEqual({
      research: 'search: 3 results for find prior work on "login page"', build: 'compile: ok (build "login page")',
    });
    expect(await task(taskId)).toEqual({ status: 'completed', run_id: run.id, agent_id: agent.lead, error: null, output: {
      research: 'search: 3 results for find prior work on "login page"', build: 'compile: ok (build "login page")' } });

    // Each member's work is a child run of the task's run.
    const view = await engine.drover.getRun(run.id);
    expect(view.children?.map((c) => c.workflow)).toEqual(['member-work', 'member-work']);
    const childIds = view.children!.map((c) => c.id);
    for (const id of childIds) expect((await engine.drover.getRun(id)).parentRunId).toBe(run.id);

    expect(sortBy(await messages(taskId), (m) => `${m.kind}${m.body}`)).toEqual([
      { kind: 'delegate', from_agent: agent.lead, to_agent: agent.builder, body: 'build "login page"' },
      { kind: 'delegate', from_agent: agent.lead, to_agent: agent.researcher, body: 'find prior work on "login page"' },
      { kind: 'reply', from_agent: agent.builder, to_agent: agent.lead, body: 'compile: ok (build "login page")' },
      { kind: 'reply', from_agent: agent.researcher, to_agent: agent.lead, body: 'search: 3 results for find prior work on "login page"' },
    ]);
    const tools = await toolRuns(taskId);
    expect(tools.map(({ agent_id, tool, status, error, timeout_ms }) => ({ agent_id, tool, status, error, timeout_ms }))).toEqual([
      { agent_id: agent.builder, tool: 'compile', status: 'success', error: null, timeout_ms: TOOL_TIMEOUT_MS },
      { agent_id: agent.researcher, tool: 'search', status: 'success', error: null, timeout_ms: TOOL_TIMEOUT_MS },
    ]);
    expect(tools.map((t) => t.run_id).sort()).toEqual([...childIds].sort());
    for (const t of tools) expect(t.took_ms).toBeGreaterThanOrEqual(0);
  });

  it('ends a hanging tool at its timeout: recorded as timeout with its error, the lead told, the task failed', async () => {
    await engine.startWorker({ workflows: teams.workflows, entities: teamEntities, concurrency: 4 });
    const taskId = await newTask('hang forever');
    const run = await engine.drover.start(teams.teamTask, { taskId });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    expect(done.steps.find((s) => s.name === 'build')!.status).toBe('failed');
    expect(done.steps.find((s) => s.name === 'research')!.status).toBe('succeeded');

    const tools = await toolRuns(taskId);
    expect(tools.map(({ tool, status, error }) => ({ tool, status, error }))).toEqual([
      { tool: 'hang', status: 'timeout', error: `step attempt timed out after ${TOOL_TIMEOUT_MS} ms` },
      { tool: 'search', status: 'success', error: null },
    ]);
    expect(tools[0].took_ms).toBeGreaterThanOrEqual(TOOL_TIMEOUT_MS - 50);
    const errors = (await messages(taskId)).filter((m) => m.kind === 'error');
    expect(errors).toEqual([{ kind: 'error', from_agent: agent.builder, to_agent: agent.lead, body: `hang: step attempt timed out after ${TOOL_TIMEOUT_MS} ms` }]);
    const row = await task(taskId);
    expect(row.status).toBe('failed');
    expect(row.output).toBeNull();
    expect(row.error).toMatch(/^build: /);
  });

  it('starts higher-priority tasks first when the worker is busy (priority 1 is highest)', async () => {
    // The backlog exists before any worker: one worker with one slot then takes the tasks by priority.
    await engine.drover.registerWorkflows(teams.workflows);
    const byPriority: Record<number, string> = {};
    for (const priority of [3, 1, 2]) {
      const taskId = await newTask(`task p${priority}`, priority);
      byPriority[priority] = taskId;
      await engine.drover.start(teams.teamTask, { taskId }, { priority });
    }
    await engine.startWorker({ workflows: teams.workflows, entities: teamEntities, concurrency: 1 });
    const runs = await engine.drover.listRuns({ workflow: 'team-task' });
    for (const r of runs.items) expect((await engine.drover.waitForRun(r.id, { timeoutMs: 30_000 })).status).toBe('succeeded');
    const order = await engine.sql.query<{ priority: number }>(`SELECT priority FROM example_teams.tasks ORDER BY started_at`);
    expect(order.map((r) => r.priority)).toEqual([1, 2, 3]);
  });

  it('loads a task with its team\'s members and their agents in one statement (the seed\'s N+1 fix), and refuses bad input precisely', async () => {
    const taskId = await newTask('one query', 2);
    const statements: string[] = [];
    const counting: Sql = { query: (text, params) => { statements.push(text); return engine.sql.query(text, params); } };
    const loaded = await loadTask(counting, taskId);
    expect(statements).toEqual([TASK_WITH_TEAM_SQL]);
    expect(TASK_WITH_TEAM_SQL).toMatch(/JOIN example_teams\.team_members tm[\s\S]*JOIN example_teams\.agents a/);
    expect(loaded).toEqual({
      task: { id: taskId, title: 'one query', priority: 2, status: 'pending' },
      team: { id: teamId, name: 'core' },
      members: [
        { agentId: agent.builder, name: 'cy', mode: 'tool', role: 'builder' },
        { agentId: agent.lead, name: 'ada', mode: 'llm', role: 'lead' },
        { agentId: agent.researcher, name: 'bob', mode: 'llm', role: 'researcher' },
      ],
    });
    await expect(loadTask(engine.sql, '00000000-0000-4000-8000-000000000000')).rejects.toMatchObject({
      code: 'unknown_task', message: 'task 00000000-0000-4000-8000-000000000000 does not exist or its team has no members' });
    await expect(engine.drover.start(teams.teamTask, { taskId: 'nope' })).rejects.toMatchObject({ code: 'invalid_input' });
  });
});
