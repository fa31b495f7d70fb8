/**
 * Agent teams of seed 004 (ModelScan) on drover: a task's run (`team-task`)
 * loads the task with its team in one join, the lead plans and delegates to
 * the members: each delegation is a message and a child run (`member-work`)
 * whose tool execution is a step with a timeout; the member's reply is a
 * message and the child's output. The task row's status follows the run.
 */
import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { DroverError } from '../../src/errors';
import { workflow } from '../../src/workflows/builder';
import { planTask, runTool } from './agents';
import { loadTask } from './queries';
import type { MessageKind } from './schema';

/** Limit of one tool execution (the `tool` step's `timeoutMs`), recorded in tool_executions.timeout_ms. */
export const TOOL_TIMEOUT_MS = 1000;

const message = (m: EntityManager, row: { taskId: string; from: string; to: string; runId: string; kind: MessageKind; body: string }) => m.query(
  `INSERT INTO example_teams.messages (task_id, from_agent, to_agent, run_id, kind, body) VALUES ($1, $2, $3, $4, $5, $6)`,
  [row.taskId, row.from, row.to, row.runId, row.kind, row.body]);

const errorText = (e: unknown) => (e && typeof e === 'object' && 'message' in e ? String((e as { message: unknown }).message) : String(e));
const errorCode = (e: unknown) => (e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : undefined);

export function createTeamWorkflows() {
  // A member's work on one delegation: a child run of the task's run.
  const member = workflow('member-work', {
    input: z.object({ taskId: z.uuid(), leadId: z.uuid(), agentId: z.uuid(), tool: z.string().min(1).max(100), instruction: z.string().min(1).max(10_000) }),
  });
  // One attempt: a tool that hangs is not run again; the timeout aborts `ctx.signal`.
  const tool = member.step('tool', { attempts: 1, timeoutMs: TOOL_TIMEOUT_MS }, async (ctx) => ({ result: await runTool(ctx.input.tool, ctx.input.instruction, ctx.signal) }));
  const reply = member.step('reply', { parents: [tool] }, async (ctx) => ctx.transaction(async (m) => {
    const { input, run } = ctx;
    const [s] = await m.query(`SELECT started_at, finished_at FROM drover.steps WHERE run_id = $1 AND name = 'tool'`, [run.id]);
    await m.query(`INSERT INTO example_teams.tool_executions (task_id, agent_id, run_id, tool, input, output, status, timeout_ms, started_at, finished_at)
      VALUES ($1, $2, $3, $4, $5, $6, 'success', $7, $8, $9)`,
    [input.taskId, input.agentId, run.id, input.tool, JSON.stringify({ instruction: input.instruction }), JSON.stringify(ctx.parents.tool), TOOL_TIMEOUT_MS, s.started_at, s.finished_at]);
    await message(m, { taskId: input.taskId, from: input.agentId, to: input.leadId, runId: run.id, kind: 'reply', body: ctx.parents.tool.result });
    return { agentId: input.agentId, result: ctx.parents.tool.result };
  }));
  // The tool failed or timed out: record it and tell the lead (the task's run then fails: its child step failed).
  member.onFailure(async (ctx) => ctx.transaction(async (m) => {
    const { input, run } = ctx;
    const failed = ctx.failure?.steps.find((s) => s.name === 'tool');
    if (!failed) return;
    const [s] = await m.query(`SELECT started_at, finished_at FROM drover.steps WHERE run_id = $1 AND name = 'tool'`, [run.id]);
    const status = errorCode(failed.error) === 'step_timeout' ? 'timeout' : 'failed';
    await m.query(`INSERT INTO example_teams.tool_executions (task_id, agent_id, run_id, tool, input, status, timeout_ms, error, started_at, finished_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [input.taskId, input.agentId, run.id, input.tool, JSON.stringify({ instruction: input.instruction }), status, TOOL_TIMEOUT_MS, errorText(failed.error), s.started_at, s.finished_at]);
    await message(m, { taskId: input.taskId, from: input.agentId, to: input.leadId, runId: run.id, kind: 'error', body: `${input.tool}: ${errorText(failed.error)}` });
  }));
  const memberWork = member.output(reply);

  // A task: the lead plans and delegates; the members work in child runs, in parallel.
  const task = workflow('team-task', { input: z.object({ taskId: z.uuid() }) });
  const plan = task.step('plan', { attempts: 3, backoff: { type: 'fixed', delayMs: 50 } }, async (ctx) => ctx.transaction(async (m) => {
    const t = await loadTask(m, ctx.input.taskId);
    const role = (r: string) => {
      const found = t.members.find((x) => x.role === r);
      if (!found) throw new DroverError('incomplete_team', `team "${t.team.name}" has no ${r}`, { retryable: false });
      return found;
    };
    const lead = role('lead');
    const researcher = role('researcher');
    const builder = role('builder');
    await m.query(`UPDATE example_teams.tasks SET status = 'running', run_id = $2, agent_id = $3, started_at = clock_timestamp(), updated_at = now() WHERE id = $1`,
      [t.task.id, ctx.run.id, lead.agentId]);
    const p = planTask(t.task.title);
    await message(m, { taskId: t.task.id, from: lead.agentId, to: researcher.agentId, runId: ctx.run.id, kind: 'delegate', body: p.research.instruction });
    await message(m, { taskId: t.task.id, from: lead.agentId, to: builder.agentId, runId: ctx.run.id, kind: 'delegate', body: p.build.instruction });
    const base = { taskId: t.task.id, leadId: lead.agentId };
    return { research: { ...base, agentId: researcher.agentId, ...p.research }, build: { ...base, agentId: builder.agentId, ...p.build } };
  }));
  const research = task.child('research', { workflow: memberWork, input: 'plan.research', parents: [plan] });
  const build = task.child('build', { workflow: memberWork, input: 'plan.build', parents: [plan] });
  const finish = task.step('finish', { parents: [research, build] }, async (ctx) => ctx.transaction(async (m) => {
    const output = { research: ctx.parents.research.result, build: ctx.parents.build.result };
    await m.query(`UPDATE example_teams.tasks SET status = 'completed', output = $2, updated_at = now() WHERE id = $1`, [ctx.input.taskId, JSON.stringify(output)]);
    return output;
  }));
  task.onFailure(async (ctx) => ctx.transaction(async (m) => {
    const steps = ctx.failure?.steps ?? [];
    const error = steps.map((s) => `${s.name}: ${errorText(s.error)}`).join('; ') || 'the run failed';
    await m.query(`UPDATE example_teams.tasks SET status = 'failed', run_id = COALESCE(run_id, $2), error = $3, updated_at = now() WHERE id = $1`, [ctx.input.taskId, ctx.run.id, error]);
  }));
  const teamTask = task.output(finish);
  return { teamTask, memberWork, workflows: [teamTask, memberWork] };
}
