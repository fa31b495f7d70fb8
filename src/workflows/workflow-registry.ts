import type { Sql } from '../db/sql';
import type { ResolvedWorkflow, WorkflowView } from '../types';

/**
 * The registry of workflow definitions in Postgres. Workers register theirs at
 * start-up; producers and the API look up the current version by name, so an
 * API server needs no processor code. The current version of a name is the one
 * whose definition (hash) was registered first most recently: a new definition
 * becomes current when it is registered, and an old worker that restarts (a
 * rolling deploy, a crash loop) registers a known hash, which changes nothing.
 * A run keeps the definition it was created with (stored on the run row).
 */
export class WorkflowRegistry {
  constructor(private readonly sql: Sql) {}

  /** Records these versions; a version not seen before becomes the current one of its name. */
  async register(workflows: ResolvedWorkflow[]): Promise<void> {
    if (workflows.length === 0) return;
    await this.sql.query(`
      INSERT INTO drover.workflows (name, version, definition)
      SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
      ON CONFLICT (name, version) DO NOTHING`,
    [workflows.map((w) => w.name), workflows.map((w) => w.version), workflows.map((w) => JSON.stringify(w))]);
  }

  /** The current version of each name asked for. */
  async resolve(names: string[]): Promise<Map<string, ResolvedWorkflow>> {
    const rows = await this.sql.query(`
      SELECT DISTINCT ON (name) name, definition FROM drover.workflows
       WHERE name = ANY ($1::text[]) ORDER BY name, registered_at DESC`, [names]);
    // Stored definitions were resolved (validated, defaults filled) when registered.
    return new Map(rows.map((r) => [r.name as string, r.definition as ResolvedWorkflow]));
  }

  /** Every workflow, current version each. */
  async list(): Promise<WorkflowView[]> {
    const rows = await this.sql.query(`
      SELECT DISTINCT ON (name) name, version, definition, registered_at FROM drover.workflows
       ORDER BY name, registered_at DESC`);
    return rows.map((r) => ({
      name: r.name, version: r.version, failFast: r.definition.failFast ?? false, steps: r.definition.steps,
      registeredAt: new Date(r.registered_at).toISOString(),
    }));
  }
}
