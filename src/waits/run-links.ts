import type { Logger } from 'pino';
import type { Queryable } from '../db/sql';
import { isoTime } from '../json';
import type { ChildRunView, MapProgress, RunWithSteps, StepView } from '../types';

/** Most children a run view lists. */
const MAX_CHILDREN_SHOWN = 1000;

/** Whether a step name is a map element's (`<map>[<index>]`; step names cannot hold `[`). */
export function isElementName(name: string): boolean {
  return name.includes('[');
}

/** A run's links: its parent and its children (`run` steps' runs), oldest first. */
export interface RunLinks {
  parentRunId: string | null;
  parentStepId: string | null;
  children: ChildRunView[];
}

/** The parent and children of a run (two indexed queries); `stepNames` names the steps that started each child. */
export async function runLinks(q: Queryable, runId: string, stepNames: Map<string, string>): Promise<RunLinks> {
  const [[links], children] = await Promise.all([
    q.query(`SELECT parent_run_id, parent_step_id FROM drover.runs WHERE id = $1`, [runId]),
    q.query(`SELECT id, workflow, status, parent_step_id, created_at FROM drover.runs WHERE parent_run_id = $1 ORDER BY created_at, id LIMIT $2`,
      [runId, MAX_CHILDREN_SHOWN]),
  ]);
  return {
    parentRunId: links?.parent_run_id ?? null,
    parentStepId: links?.parent_step_id ?? null,
    children: children.map((c): ChildRunView => ({
      id: c.id, workflow: c.workflow, status: c.status, step: stepNames.get(c.parent_step_id) ?? null, createdAt: isoTime(c.created_at)!,
    })),
  };
}

/**
 * Splits a run's steps into the definition's steps (each map step with its
 * elements' `map` counts, its `dependsOn` without them, each child-run step
 * with its `childRunId`) and each map step's elements, by map step name.
 */
export function splitElements<S extends StepView>(all: S[], children: ChildRunView[] = []): { steps: S[]; elements: Map<string, S[]> } {
  const elements = new Map<string, S[]>();
  const steps: S[] = [];
  for (const step of all) {
    if (!isElementName(step.name)) {
      steps.push(step);
      continue;
    }
    const owner = step.name.slice(0, step.name.lastIndexOf('['));
    const list = elements.get(owner) ?? [];
    list.push(step);
    elements.set(owner, list);
  }
  const childOfStep = new Map(children.map((c) => [c.step, c.id]));
  for (const list of elements.values()) list.sort((a, b) => indexOf(a.name) - indexOf(b.name));
  return {
    elements,
    steps: steps.map((s) => ({
      ...s,
      dependsOn: s.dependsOn.filter((d) => !isElementName(d)),
      ...(elements.has(s.name) ? { map: progressOf(elements.get(s.name)!) } : {}),
      ...(childOfStep.has(s.name) ? { childRunId: childOfStep.get(s.name) } : {}),
    })),
  };
}

const indexOf = (name: string) => Number(name.slice(name.lastIndexOf('[') + 1, -1));

/** A map step's elements counted by outcome. */
function progressOf(list: StepView[]): MapProgress {
  const p: MapProgress = { total: 0, succeeded: 0, failed: 0, running: 0, waiting: 0 };
  for (const step of list) {
    p.total++;
    if (step.status === 'succeeded') p.succeeded++;
    else if (step.status === 'running') p.running++;
    else if (step.status === 'pending' || step.status === 'queued') p.waiting++;
    else p.failed++;
  }
  return p;
}

/**
 * A run view with its links (CONTRACT §7): `parentRunId` (and the parent's
 * step), its `children`, each map step's element counts (`map`), and only
 * the definition's steps in `steps` (elements are counted, not listed; the
 * dashboard lists them).
 */
export async function decorateRun(q: Queryable, run: RunWithSteps): Promise<RunWithSteps> {
  const links = await runLinks(q, run.id, new Map(run.steps.map((s) => [s.id, s.name])));
  return { ...run, ...links, steps: splitElements(run.steps, links.children).steps };
}

/**
 * Cancels the open children of a cancelled run, and theirs (each in its own
 * transaction, after the parent's committed: run rows are never locked
 * parent-then-child). The reconciler cancels the ones a crash left open.
 */
export async function cancelChildren(q: Queryable, runId: string, cancel: (id: string) => Promise<unknown>, logger: Logger, depth = 0): Promise<void> {
  if (depth > 32) return;
  const open = await q.query(`SELECT id FROM drover.runs WHERE parent_run_id = $1 AND status IN ('pending', 'running') ORDER BY id`, [runId]);
  for (const child of open) {
    await cancel(child.id).catch((err) => {
      if ((err as { code?: string }).code !== 'invalid_state') logger.warn({ err, runId: child.id }, 'could not cancel a child run; the reconciler will');
    });
    await cancelChildren(q, child.id, cancel, logger, depth + 1);
  }
}
