import type { ResolvedWorkflow } from '../../types';
import { definitionSteps, Dag } from '../dag';
import { Json, renderPage, Status, Time } from '../layout';
import type { WorkerRow } from '../queries';

/** A registered version of a workflow. */
export interface WorkflowVersionRow {
  name: string;
  version: string;
  registeredAt: Date;
  definition: ResolvedWorkflow;
  /** The version's input JSON Schema (null: the input is not checked). */
  inputSchema: Record<string, unknown> | null;
}

/** `/workflows`: each workflow's latest definition drawn as its DAG, with every registered version. */
export function workflowsPage(versions: WorkflowVersionRow[]): string {
  const byName = new Map<string, WorkflowVersionRow[]>();
  for (const v of versions) {
    const list = byName.get(v.name);
    if (list) list.push(v);
    else byName.set(v.name, [v]);
  }
  return renderPage({ title: 'Workflows', section: 'workflows' }, (
    <>
      <h1>Workflows</h1>
      {byName.size === 0 ? <p class="empty">No workflow is registered yet: workers register theirs when they start.</p> : null}
      {[...byName].map(([name, list]) => {
        const latest = list[0];
        return (
          <section key={name} class="workflow" data-workflow={name} aria-labelledby={`wf-${name}`}>
            <h2 id={`wf-${name}`}>{name}</h2>
            <p>
              {latest.definition.steps.length} steps{latest.definition.failFast ? ', fail fast' : ''} ·{' '}
              <a href={`/?workflow=${encodeURIComponent(name)}`}>Runs of {name}</a>
            </p>
            <div class="dag-scroll"><Dag steps={definitionSteps(latest.definition.steps)} label={`Steps of workflow ${name}`} /></div>
            {latest.inputSchema
              ? <details class="input-schema" data-input-schema><summary>Input schema (JSON Schema; runs whose input does not match are refused with 422)</summary><Json value={latest.inputSchema} /></details>
              : <p class="muted small">No input schema: any JSON input is accepted.</p>}
            <table class="versions">
              <caption>Versions</caption>
              <thead><tr><th scope="col">Version</th><th scope="col">Registered (UTC)</th><th scope="col">Steps</th></tr></thead>
              <tbody>
                {list.map((v) => (
                  <tr key={v.version}>
                    <td class="mono">{v.version}{v === latest ? ' (latest)' : ''}</td>
                    <td><Time at={v.registeredAt} /></td>
                    <td class="small">{v.definition.steps.map((s) => s.name).join(', ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        );
      })}
    </>
  ));
}

/** `/workers`: every registered worker with heartbeat, queues, concurrency, status and running steps. */
export function workersPage(workers: WorkerRow[], now: Date): string {
  return renderPage({ title: 'Workers', section: 'workers', live: '/events' }, (
    <>
      <h1>Workers</h1>
      <div id="live">
        {workers.length === 0 ? <p class="empty">No worker has registered: start one with drover worker --module M.</p> : (
          <table class="workers">
            <thead>
              <tr><th scope="col">Worker</th><th scope="col">Status</th><th scope="col">Host / pid</th><th scope="col">Queues</th>
                <th scope="col">Running steps</th><th scope="col">Last heartbeat</th><th scope="col">Started (UTC)</th><th scope="col">Version</th></tr>
            </thead>
            <tbody>
              {workers.map((w) => (
                <tr key={w.id} data-worker={w.id} data-status={w.status}>
                  <td class="mono">{w.id}</td>
                  <td><Status status={w.status} /></td>
                  <td>{w.hostname} / {w.pid}</td>
                  <td class="mono">{w.queues.join(', ')}</td>
                  <td>{w.activeSteps} of {w.concurrency}</td>
                  <td><Time at={w.lastHeartbeatAt} /> <span class="muted">({Math.max(0, Math.round((now.getTime() - new Date(w.lastHeartbeatAt).getTime()) / 1000))} s ago)</span></td>
                  <td><Time at={w.startedAt} /></td>
                  <td class="mono">{w.version}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </>
  ));
}
