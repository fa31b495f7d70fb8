import Table from 'cli-table3';
import type { ApiKeyView } from '../auth/api-keys';
import type { AuditEventView, RunListItem, RunView, RunWithSteps, WorkerView, WorkflowView } from '../types';

/**
 * How the operator's commands print: JSON with `--json`, otherwise aligned
 * columns (cli-table3 without borders, like kubectl) and short lines.
 */

const BORDERLESS = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ',
};

/** Aligned columns with a header row; cells are shown as given, `-` for empty. */
export function table(head: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const t = new Table({ head, chars: BORDERLESS, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
  for (const row of rows) t.push(row.map((cell) => (cell === null || cell === undefined || cell === '' ? '-' : String(cell))));
  return t.toString().split('\n').map((line) => line.trimEnd()).join('\n');
}

/** JSON as the commands print it (two-space indent). */
export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** A value on one line, cut at `max` characters. */
export function oneLine(value: unknown, max = 60): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The message of a run's or step's error JSON (`{message, …}`), else the JSON itself. */
export function errorText(error: unknown): string {
  if (error && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string') return (error as { message: string }).message;
  return oneLine(error, 200);
}

/** Seconds between two ISO times, e.g. `1.25 s`; empty when either is missing. */
function took(from: string | null, to: string | null): string {
  if (!from || !to) return '';
  return `${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(2)} s`;
}

/** The runs list as a table. */
export function runsTable(items: RunListItem[]): string {
  return table(['ID', 'WORKFLOW', 'STATUS', 'WORKSPACE', 'CREATED', 'TOOK'],
    items.map((r) => [r.id, r.workflow, r.status, r.workspace, r.createdAt, took(r.startedAt ?? r.createdAt, r.finishedAt)]));
}

/** A run with its steps: a few `key: value` lines, then the steps as a table. */
export function runDetail(run: RunWithSteps): string {
  const lines = [
    `run        ${run.id}`,
    `workflow   ${run.workflow}`,
    `status     ${run.status}`,
    `workspace  ${run.workspace}`,
    ...(run.idempotencyKey ? [`key        ${run.idempotencyKey}`] : []),
    `created    ${run.createdAt}`,
    ...(run.finishedAt ? [`finished   ${run.finishedAt}`] : []),
    `input      ${oneLine(run.input, 100)}`,
    ...(run.output !== null ? [`output     ${oneLine(run.output, 100)}`] : []),
    ...(run.error !== null ? [`error      ${errorText(run.error)}`] : []),
    '',
    table(['STEP', 'STATUS', 'ATTEMPTS', 'QUEUE', 'DEPENDS ON', 'TOOK', 'ERROR'],
      run.steps.map((s) => [s.name, s.status, s.attempts, s.queue, s.dependsOn.join(','), took(s.startedAt, s.finishedAt),
        s.error !== null ? oneLine(errorText(s.error), 60) : s.waitingFor ? `(${s.waitingFor})` : '']),
    ),
  ];
  return lines.join('\n');
}

/** One line about a run after an action, e.g. `cancelled run 1b… (workflow pair, status cancelled)`. */
export function runLine(what: string, run: RunView): string {
  return `${what} ${run.id} (workflow ${run.workflow}, status ${run.status})`;
}

/** The audit trail as a table. */
export function auditTable(items: AuditEventView[]): string {
  return table(['AT', 'TYPE', 'STEP', 'ACTOR', 'DATA'], items.map((e) => [e.at, e.type, e.stepName, e.actor, oneLine(e.data, 70)]));
}

/** The registered workflows as a table. */
export function workflowsTable(items: WorkflowView[]): string {
  return table(['NAME', 'VERSION', 'STEPS', 'REGISTERED'],
    items.map((w) => [w.name, w.version.slice(0, 12), w.steps.map((s) => s.name).join(','), w.registeredAt]));
}

/** The registered workers as a table. */
export function workersTable(items: WorkerView[]): string {
  return table(['ID', 'STATUS', 'HOST', 'PID', 'QUEUES', 'CONCURRENCY', 'LAST HEARTBEAT'],
    items.map((w) => [w.id, w.status, w.hostname, w.pid, w.queues.join(','), w.concurrency, w.lastHeartbeatAt]));
}

/** The API keys as a table (never their secrets). */
export function keysTable(items: ApiKeyView[]): string {
  return table(['ID', 'PREFIX', 'NAME', 'SCOPE', 'WORKSPACES', 'EXPIRES', 'CREATED', 'LAST USED', 'REVOKED'],
    items.map((k) => [k.id, k.prefix, k.name, k.scope, k.workspaces ? k.workspaces.join(',') : '*', k.expiresAt, k.createdAt, k.lastUsedAt, k.revokedAt]));
}
