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
  /** Versions this process has resolved or registered (`name@version`). */
  private readonly seen = new Set<string>();
  private readonly listeners = new Set<(queues: string[]) => void>();

  constructor(private readonly sql: Sql) {}

  /**
   * Calls `listener` with the step queues of a version this process had not seen
   * (a run of it is about to be created, or it was registered here), so the queue
   * list (Bull Board, the queue gauges) learns a new queue before the run's jobs
   * exist, not at its next periodic refresh. Returns the unsubscribe function.
   */
  onNewQueues(listener: (queues: string[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private sight(workflows: Iterable<ResolvedWorkflow>): void {
    const queues = new Set<string>();
    for (const w of workflows) {
      const key = `${w.name}@${w.version}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      for (const s of w.steps) queues.add(s.queue);
    }
    if (queues.size === 0) return;
    for (const listener of this.listeners) listener([...queues]);
  }

  /** Records these versions; a version not seen before becomes the current one of its name. */
  async register(workflows: ResolvedWorkflow[]): Promise<void> {
    if (workflows.length === 0) return;
    // The input schema has a column of its own (GET /api/workflows shows it); the definition keeps the rest.
    await this.sql.query(`
      INSERT INTO drover.workflows (name, version, definition, input_schema)
      SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[])
      ON CONFLICT (name, version) DO NOTHING`,
    [workflows.map((w) => w.name), workflows.map((w) => w.version),
      workflows.map(({ inputSchema: _schema, ...w }) => JSON.stringify(w)),
      workflows.map((w) => (w.inputSchema === undefined ? null : JSON.stringify(w.inputSchema)))]);
    this.sight(workflows);
  }

  /** The current version of each name asked for. */
  async resolve(names: string[]): Promise<Map<string, ResolvedWorkflow>> {
    const rows = await this.sql.query(`
      SELECT DISTINCT ON (name) name, definition, input_schema FROM drover.workflows
       WHERE name = ANY ($1::text[]) ORDER BY name, registered_at DESC`, [names]);
    // Stored definitions were resolved (validated, defaults filled) when registered.
    const found = new Map(rows.map((r) => [r.name as string, withSchema(r.definition as ResolvedWorkflow, r.input_schema)]));
    this.sight(found.values());
    return found;
  }

  /** Every workflow, current version each. */
  async list(): Promise<WorkflowView[]> {
    const rows = await this.sql.query(`
      SELECT DISTINCT ON (name) name, version, definition, input_schema, registered_at FROM drover.workflows
       ORDER BY name, registered_at DESC`);
    return rows.map((r) => ({
      name: r.name, version: r.version, failFast: r.definition.failFast ?? false, steps: r.definition.steps,
      inputSchema: r.input_schema ?? null,
      registeredAt: new Date(r.registered_at).toISOString(),
    }));
  }
}

function withSchema(definition: ResolvedWorkflow, schema: Record<string, unknown> | null): ResolvedWorkflow {
  return schema ? { ...definition, inputSchema: schema } : definition;
}
