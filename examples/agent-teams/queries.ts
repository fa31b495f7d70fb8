/**
 * The seed's N+1 fix: a task with its team's members and their agents in one
 * statement (a join), instead of one query for the team and one per member.
 */
import { DroverError } from '../../src/errors';
import type { MemberRole, TaskStatus } from './schema';

/** Anything that runs SQL: an EntityManager (in `ctx.transaction`), a DataSource or a pg Pool. */
export interface Sql { query(sql: string, params?: unknown[]): Promise<any> }

export interface TaskWithTeam {
  task: { id: string; title: string; priority: number; status: TaskStatus };
  team: { id: string; name: string };
  members: Array<{ agentId: string; name: string; mode: string; role: MemberRole }>;
}

/** The statement `loadTask` issues: exported so the test and the README show it is one. */
export const TASK_WITH_TEAM_SQL = `
  SELECT t.id, t.title, t.priority, t.status, tm.team_id, te.name AS team_name,
         a.id AS agent_id, a.name AS agent_name, a.mode, tm.role
  FROM example_teams.tasks t
  JOIN example_teams.teams te ON te.id = t.team_id
  JOIN example_teams.team_members tm ON tm.team_id = t.team_id
  JOIN example_teams.agents a ON a.id = tm.agent_id
  WHERE t.id = $1
  ORDER BY tm.role`;

/** One query: the task, its team, and each member with its agent. */
export async function loadTask(sql: Sql, taskId: string): Promise<TaskWithTeam> {
  const rows: any[] = await sql.query(TASK_WITH_TEAM_SQL, [taskId]);
  if (rows.length === 0) throw new DroverError('unknown_task', `task ${taskId} does not exist or its team has no members`, { retryable: false });
  const [r] = rows;
  return {
    task: { id: r.id, title: r.title, priority: r.priority, status: r.status },
    team: { id: r.team_id, name: r.team_name },
    members: rows.map((m) => ({ agentId: m.agent_id, name: m.agent_name, mode: m.mode, role: m.role })),
  };
}
