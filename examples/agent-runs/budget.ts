import type { EntityManager } from 'typeorm';
import { DroverError } from '../../src/errors';

/** The workspace's budget is spent: fails the step for good, with code `budget_exceeded`. */
export class BudgetExceededError extends DroverError {
  constructor(workspace: string, tokens: number, left: number) {
    super('budget_exceeded', `budget_exceeded: workspace "${workspace}" has ${left} token(s) left, the step needs ${tokens}`, { retryable: false, details: { workspace, tokens, left } });
  }
}

/**
 * Charges a step's tokens to the workspace's budget in the step's transaction
 * (`ctx.transaction`): the charge commits with the step's success, so a failed
 * attempt's charge rolls back and the step is charged exactly once. The charge
 * row's key is the step id: a second charge of the same step is refused. Throws `BudgetExceededError` when the budget cannot cover it.
 */
export async function charge(m: EntityManager, c: { stepId: string; runId: string; workspace: string; step: string; attempt: number; tokens: number }): Promise<number> {
  const rows: Array<{ left: number }> = await m.query(
    // (A CTE: TypeORM answers a bare UPDATE … RETURNING with [rows, count].)
    `WITH u AS (UPDATE example_agents.budgets SET spent_tokens = spent_tokens + $2
      WHERE workspace = $1 AND spent_tokens + $2 <= limit_tokens RETURNING limit_tokens - spent_tokens AS left) SELECT "left" FROM u`, [c.workspace, c.tokens]);
  if (rows.length === 0) {
    const [budget]: Array<{ left: number }> = await m.query(`SELECT limit_tokens - spent_tokens AS left FROM example_agents.budgets WHERE workspace = $1`, [c.workspace]);
    throw new BudgetExceededError(c.workspace, c.tokens, budget?.left ?? 0);
  }
  // The primary key (step id) refuses a second charge of the same step outright.
  await m.query(`INSERT INTO example_agents.charges (step_id, run_id, workspace, step, attempt, tokens) VALUES ($1, $2, $3, $4, $5, $6)`,
    [c.stepId, c.runId, c.workspace, c.step, c.attempt, c.tokens]);
  return rows[0].left;
}
