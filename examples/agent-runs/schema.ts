/** The agent example's own tables (schema `example_agents`, migrations table `example_agents_migrations`), beside drover's. */
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

export interface Budget { workspace: string; limitTokens: number; spentTokens: number }
export const BudgetEntity = new EntitySchema<Budget>({
  name: 'AgentBudget', tableName: 'budgets', schema: 'example_agents',
  columns: {
    workspace: { type: 'text', primary: true },
    limitTokens: { name: 'limit_tokens', type: 'int' },
    spentTokens: { name: 'spent_tokens', type: 'int' },
  },
});

/** One charge per step (its id is the key): the proof that a step is charged once. */
export interface Charge { stepId: string; runId: string; workspace: string; step: string; attempt: number; tokens: number }
export const ChargeEntity = new EntitySchema<Charge>({
  name: 'AgentCharge', tableName: 'charges', schema: 'example_agents',
  columns: {
    stepId: { name: 'step_id', type: 'uuid', primary: true },
    runId: { name: 'run_id', type: 'uuid' },
    workspace: { type: 'text' },
    step: { type: 'text' },
    attempt: { type: 'int' },
    tokens: { type: 'int' },
  },
});

/** What a policy does with a tool: run it, stop for a human's approval, or block it (a threat). */
export type PolicyAction = 'allow' | 'approve' | 'block';
export interface Policy { tool: string; action: PolicyAction; reason: string }
export const PolicyEntity = new EntitySchema<Policy>({
  name: 'AgentPolicy', tableName: 'policies', schema: 'example_agents',
  columns: { tool: { type: 'text', primary: true }, action: { type: 'text' }, reason: { type: 'text' } },
});

/** The audit trail of tool calls: one row per call, whatever the policy decided (insert-only). */
export interface ToolCall { id: string; runId: string; workspace: string; callId: string; tool: string; args: unknown; decision: string; decidedBy: string; result: unknown }
export const ToolCallEntity = new EntitySchema<ToolCall>({
  name: 'AgentToolCall', tableName: 'tool_calls', schema: 'example_agents',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    runId: { name: 'run_id', type: 'uuid' },
    workspace: { type: 'text' },
    callId: { name: 'call_id', type: 'text' },
    tool: { type: 'text' },
    args: { type: 'jsonb' },
    decision: { type: 'text' },
    decidedBy: { name: 'decided_by', type: 'text' },
    result: { type: 'jsonb', nullable: true },
  },
});

/** A call a policy blocked. */
export interface Threat { id: string; runId: string; workspace: string; tool: string; reason: string }
export const ThreatEntity = new EntitySchema<Threat>({
  name: 'AgentThreat', tableName: 'threats', schema: 'example_agents',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    runId: { name: 'run_id', type: 'uuid' },
    workspace: { type: 'text' },
    tool: { type: 'text' },
    reason: { type: 'text' },
  },
});

export class CreateAgentTables1765800100000 implements MigrationInterface {
  name = 'CreateAgentTables1765800100000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS example_agents`);
    await q.query(`CREATE TABLE example_agents.budgets (workspace text PRIMARY KEY, limit_tokens int NOT NULL CHECK (limit_tokens >= 0),
      spent_tokens int NOT NULL DEFAULT 0, CHECK (spent_tokens <= limit_tokens))`);
    await q.query(`CREATE TABLE example_agents.charges (step_id uuid PRIMARY KEY, run_id uuid NOT NULL, workspace text NOT NULL REFERENCES example_agents.budgets,
      step text NOT NULL, attempt int NOT NULL, tokens int NOT NULL CHECK (tokens >= 0), at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE INDEX ON example_agents.charges (run_id)`);
    await q.query(`CREATE TABLE example_agents.policies (tool text PRIMARY KEY, action text NOT NULL CHECK (action IN ('allow', 'approve', 'block')), reason text NOT NULL)`);
    await q.query(`INSERT INTO example_agents.policies (tool, action, reason) VALUES
      ('web_search', 'allow', 'read-only'), ('read_file', 'allow', 'read-only'), ('flaky_lookup', 'allow', 'read-only'),
      ('delete_records', 'approve', 'destroys data'), ('send_email', 'approve', 'leaves the system'),
      ('exec_shell', 'block', 'arbitrary code execution')`);
    await q.query(`CREATE TABLE example_agents.tool_calls (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), run_id uuid NOT NULL, workspace text NOT NULL,
      call_id text NOT NULL, tool text NOT NULL, args jsonb NOT NULL, decision text NOT NULL, decided_by text NOT NULL, result jsonb,
      at timestamptz NOT NULL DEFAULT now(), UNIQUE (run_id, call_id))`);
    await q.query(`CREATE TABLE example_agents.threats (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), run_id uuid NOT NULL, workspace text NOT NULL,
      tool text NOT NULL, reason text NOT NULL, at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE INDEX ON example_agents.threats (workspace, at)`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA example_agents CASCADE`);
  }
}

export const agentEntities = [BudgetEntity, ChargeEntity, PolicyEntity, ToolCallEntity, ThreatEntity];
export const agentMigrations = [CreateAgentTables1765800100000];
export const AGENT_MIGRATIONS_TABLE = 'example_agents_migrations';
