/** The agent-teams example's own tables (schema `example_teams`, migrations table `example_teams_migrations`), beside drover's. */
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

export interface Agent { id: string; name: string; mode: string; capabilities: string[] }
export const AgentEntity = new EntitySchema<Agent>({
  name: 'TeamAgent', tableName: 'agents', schema: 'example_teams',
  columns: { id: { type: 'uuid', primary: true, generated: 'uuid' }, name: { type: 'text', unique: true }, mode: { type: 'text' }, capabilities: { type: 'jsonb' } },
});

export interface Team { id: string; name: string; description: string | null }
export const TeamEntity = new EntitySchema<Team>({
  name: 'TeamTeam', tableName: 'teams', schema: 'example_teams',
  columns: { id: { type: 'uuid', primary: true, generated: 'uuid' }, name: { type: 'text', unique: true }, description: { type: 'text', nullable: true } },
});

export type MemberRole = 'lead' | 'researcher' | 'builder';
export interface TeamMember { teamId: string; agentId: string; role: MemberRole }
export const TeamMemberEntity = new EntitySchema<TeamMember>({
  name: 'TeamMember', tableName: 'team_members', schema: 'example_teams',
  columns: { teamId: { name: 'team_id', type: 'uuid', primary: true }, agentId: { name: 'agent_id', type: 'uuid', primary: true }, role: { type: 'text' } },
});

export type TaskStatus = 'pending' | 'running' | 'completed' | 'failed';
export interface Task { id: string; teamId: string; agentId: string | null; title: string; priority: number; status: TaskStatus; runId: string | null; output: unknown; error: string | null; startedAt: Date | null }
export const TaskEntity = new EntitySchema<Task>({
  name: 'TeamTask', tableName: 'tasks', schema: 'example_teams',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' }, teamId: { name: 'team_id', type: 'uuid' }, agentId: { name: 'agent_id', type: 'uuid', nullable: true },
    title: { type: 'text' }, priority: { type: 'int' }, status: { type: 'text' }, runId: { name: 'run_id', type: 'uuid', nullable: true },
    output: { type: 'jsonb', nullable: true }, error: { type: 'text', nullable: true }, startedAt: { name: 'started_at', type: 'timestamptz', nullable: true },
  },
});

export type MessageKind = 'delegate' | 'reply' | 'error';
export interface Message { id: string; taskId: string; fromAgent: string; toAgent: string; runId: string; kind: MessageKind; body: string }
export const MessageEntity = new EntitySchema<Message>({
  name: 'TeamMessage', tableName: 'messages', schema: 'example_teams',
  columns: { id: { type: 'uuid', primary: true, generated: 'uuid' }, taskId: { name: 'task_id', type: 'uuid' }, fromAgent: { name: 'from_agent', type: 'uuid' }, toAgent: { name: 'to_agent', type: 'uuid' },
    runId: { name: 'run_id', type: 'uuid' }, kind: { type: 'text' }, body: { type: 'text' } },
});

export type ToolStatus = 'success' | 'failed' | 'timeout';
export interface ToolExecution { id: string; taskId: string; agentId: string; runId: string; tool: string; input: unknown; output: unknown; status: ToolStatus;
  timeoutMs: number; error: string | null; startedAt: Date | null; finishedAt: Date | null }
export const ToolExecutionEntity = new EntitySchema<ToolExecution>({
  name: 'TeamToolExecution', tableName: 'tool_executions', schema: 'example_teams',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' }, taskId: { name: 'task_id', type: 'uuid' }, agentId: { name: 'agent_id', type: 'uuid' }, runId: { name: 'run_id', type: 'uuid' },
    tool: { type: 'text' }, input: { type: 'jsonb' }, output: { type: 'jsonb', nullable: true }, status: { type: 'text' },
    timeoutMs: { name: 'timeout_ms', type: 'int' }, error: { type: 'text', nullable: true },
    startedAt: { name: 'started_at', type: 'timestamptz', nullable: true }, finishedAt: { name: 'finished_at', type: 'timestamptz', nullable: true },
  },
});

export class CreateTeamTables1766650000000 implements MigrationInterface {
  name = 'CreateTeamTables1766650000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS example_teams`);
    await q.query(`CREATE TABLE example_teams.agents (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 255),
      mode text NOT NULL, capabilities jsonb NOT NULL DEFAULT '[]', created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE example_teams.teams (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL, description text, created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE example_teams.team_members (team_id uuid NOT NULL REFERENCES example_teams.teams ON DELETE CASCADE,
      agent_id uuid NOT NULL REFERENCES example_teams.agents, role text NOT NULL CHECK (role IN ('lead', 'researcher', 'builder')),
      joined_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (team_id, agent_id))`);
    // One lead and at most one agent per role in a team.
    await q.query(`CREATE UNIQUE INDEX team_members_one_per_role ON example_teams.team_members (team_id, role)`);
    await q.query(`CREATE TABLE example_teams.tasks (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), team_id uuid NOT NULL REFERENCES example_teams.teams,
      agent_id uuid REFERENCES example_teams.agents, title text NOT NULL, priority int NOT NULL DEFAULT 0 CHECK (priority >= 0),
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'completed', 'failed')),
      run_id uuid, output jsonb, error text, started_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE example_teams.messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), task_id uuid NOT NULL REFERENCES example_teams.tasks,
      from_agent uuid NOT NULL REFERENCES example_teams.agents, to_agent uuid NOT NULL REFERENCES example_teams.agents, run_id uuid NOT NULL,
      kind text NOT NULL CHECK (kind IN ('delegate', 'reply', 'error')), body text NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    await q.query(`CREATE INDEX messages_task ON example_teams.messages (task_id, created_at)`);
    await q.query(`CREATE INDEX messages_sender ON example_teams.messages (from_agent)`);
    await q.query(`CREATE INDEX messages_receiver ON example_teams.messages (to_agent)`);
    await q.query(`CREATE TABLE example_teams.tool_executions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), task_id uuid NOT NULL REFERENCES example_teams.tasks,
      agent_id uuid NOT NULL REFERENCES example_teams.agents, run_id uuid NOT NULL UNIQUE, tool text NOT NULL, input jsonb NOT NULL, output jsonb,
      status text NOT NULL CHECK (status IN ('success', 'failed', 'timeout')), timeout_ms int NOT NULL, error text,
      started_at timestamptz, finished_at timestamptz)`);
    // The seed's recommended indexes (its tasks.workflow_id is the task's drover run id here).
    await q.query(`CREATE INDEX idx_tasks_agent_status ON example_teams.tasks (agent_id, status)`);
    await q.query(`CREATE INDEX idx_tasks_workflow ON example_teams.tasks (run_id)`);
    await q.query(`CREATE INDEX idx_tool_exec_agent ON example_teams.tool_executions (agent_id, started_at)`);
    await q.query(`CREATE UNIQUE INDEX idx_teams_name ON example_teams.teams (name)`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA example_teams CASCADE`);
  }
}

export const teamEntities = [AgentEntity, TeamEntity, TeamMemberEntity, TaskEntity, MessageEntity, ToolExecutionEntity];
export const teamMigrations = [CreateTeamTables1766650000000];
export const TEAM_MIGRATIONS_TABLE = 'example_teams_migrations';
