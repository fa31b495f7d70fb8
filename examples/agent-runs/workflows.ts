/**
 * Agent runs of seed 000 (FerrumDeck) on drover: a model call, then its tool
 * calls fanned out (map steps), a policy that blocks some tools (threats),
 * lets some run, and stops the risky ones for a human's approval signal
 * (waitFor); each step charges the workspace's token budget once, in its
 * transaction; at most one run per workspace at a time.
 */
import type { EntityManager } from 'typeorm';
import { z } from 'zod';
import { DroverError } from '../../src/errors';
import { workflow } from '../../src/workflows/builder';
import { charge } from './budget';
import { ANSWER_TOKENS, fakeModel, runTool, TOOL_TOKENS, type ToolRequest } from './model';
import type { PolicyAction } from './schema';

/** What the workflows need from the process they run in: a way to signal a run (the worker's `Drover`). */
export interface AgentDeps {
  signal(runId: string, name: string, payload: unknown): Promise<unknown>;
}

/** The approval signal's payload: `POST /api/runs/:id/signals/approval {"payload": {"approved": true, "by": "ada"}}`. */
export type Approval = { approved: boolean; by: string };

// Budgets, audit rows and threats belong to the run's drover workspace (the one its API key may use), never to what
// the input says; `input.workspace` exists for the concurrency key (a key is a path into the input) and must match it.
type Ctx = { run: { id: string; workspace: string }; step: { id: string; name: string; attempt: number } };
const chargeStep = (m: EntityManager, ctx: Ctx, tokens: number) =>
  charge(m, { stepId: ctx.step.id, runId: ctx.run.id, workspace: ctx.run.workspace, step: ctx.step.name, attempt: ctx.step.attempt, tokens });

const audit = (m: EntityManager, ctx: Ctx, call: ToolRequest, decision: string, decidedBy: string, result: unknown) => m.query(
  `INSERT INTO example_agents.tool_calls (run_id, workspace, call_id, tool, args, decision, decided_by, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
  [ctx.run.id, ctx.run.workspace, call.id, call.tool, JSON.stringify(call.args), decision, decidedBy, result === null ? null : JSON.stringify(result)]);

export function createAgentWorkflows(deps: AgentDeps) {
  const wf = workflow('agent-run', {
    input: z.object({ workspace: z.string().min(1).max(100), prompt: z.string().min(1).max(10_000) }),
    // One run per workspace at a time; the others wait, oldest first.
    concurrency: { key: 'input.workspace', limit: 1 },
  });

  const model = wf.step('model', { attempts: 3, backoff: { type: 'fixed', delayMs: 50 } }, async (ctx) => {
    if (ctx.input.workspace !== ctx.run.workspace) {
      throw new DroverError('workspace_mismatch', `input.workspace "${ctx.input.workspace}" is not the run's workspace "${ctx.run.workspace}"`, { retryable: false });
    }
    const answer = fakeModel(ctx.input.prompt);
    await ctx.transaction((m) => chargeStep(m, ctx, answer.tokens));
    return answer;
  });

  const policy = wf.step('policy', { parents: [model] }, async (ctx) => {
    const calls = ctx.parents.model.toolCalls;
    const decided = await ctx.transaction(async (m) => {
      const rows: Array<{ tool: string; action: PolicyAction; reason: string }> = await m.query(
        `SELECT tool, action, reason FROM example_agents.policies WHERE tool = ANY ($1::text[])`, [calls.map((c) => c.tool)]);
      const byTool = new Map(rows.map((r) => [r.tool, r]));
      const allowed: ToolRequest[] = [];
      const risky: ToolRequest[] = [];
      let blocked = 0;
      for (const call of calls) {
        // A tool without a policy is blocked: deny by default.
        const rule = byTool.get(call.tool) ?? { action: 'block' as const, reason: 'no policy for this tool' };
        if (rule.action === 'allow') allowed.push(call);
        else if (rule.action === 'approve') risky.push(call);
        else {
          blocked++;
          await m.query(`INSERT INTO example_agents.threats (run_id, workspace, tool, reason) VALUES ($1, $2, $3, $4)`, [ctx.run.id, ctx.run.workspace, call.tool, rule.reason]);
          await audit(m, ctx, call, 'blocked', 'policy', null);
        }
      }
      return { allowed, risky, blocked };
    });
    ctx.log(`policy: ${decided.allowed.length} allowed, ${decided.risky.length} need approval, ${decided.blocked} blocked`);
    // Nothing risky: the policy approves itself, so the approval step does not wait for a human.
    // (A retried attempt may signal again: the first signal of a name wins, later ones are kept and audited.)
    if (decided.risky.length === 0) await deps.signal(ctx.run.id, 'approval', { approved: true, by: 'policy' } satisfies Approval);
    return decided;
  });

  const approval = wf.waitFor('approval', { signal: 'approval', parents: [policy] });

  const tools = wf.map('tools', { over: policy, path: 'allowed', attempts: 3, backoff: { type: 'fixed', delayMs: 50 }, timeoutMs: 30_000, concurrency: 4 }, async (ctx) => {
    const call = ctx.item as ToolRequest;
    return ctx.transaction(async (m) => {
      await chargeStep(m, ctx, TOOL_TOKENS);
      const out = runTool(call.tool, call.args, ctx.step.attempt);
      await audit(m, ctx, call, 'allowed', 'policy', out);
      return out;
    });
  });

  const approved = wf.map('approved-tools', { over: policy, path: 'risky', parents: [policy, approval], attempts: 3, backoff: { type: 'fixed', delayMs: 50 }, timeoutMs: 30_000 }, async (ctx) => {
    const call = ctx.item as ToolRequest;
    const decision = ctx.parents.approval as Approval | null;
    return ctx.transaction(async (m) => {
      if (!decision?.approved) {
        await audit(m, ctx, call, 'denied', decision?.by ?? 'unknown', null);
        return { tool: call.tool, result: 'denied' };
      }
      await chargeStep(m, ctx, TOOL_TOKENS);
      const out = runTool(call.tool, call.args, ctx.step.attempt);
      await audit(m, ctx, call, 'approved', decision.by, out);
      return out;
    });
  });

  const answer = wf.step('answer', { parents: [model, tools, approved] }, async (ctx) => {
    const results = [...ctx.parents.tools, ...ctx.parents['approved-tools']];
    const left = await ctx.transaction((m) => chargeStep(m, ctx, ANSWER_TOKENS));
    return { text: ctx.parents.model.text, results: results.map((r) => r.result), tokensLeft: left };
  });

  const agentRun = wf.output(answer);
  return { agentRun, workflows: [agentRun] };
}
