import { jobIdOf } from '../../queue/dispatcher';
import type { AuditEventView, RunError } from '../../types';
import { Dag } from '../dag';
import { duration, Json, renderPage, Status, Time, ConfirmDialog } from '../layout';
import type { RunPageData } from '../queries';
import { StepPanel, type PanelProps } from './step-panel';
import { WAIT_PROCESSORS } from '../../waits/kinds';

/** What a run page shows beyond the run's data. */
export interface RunPageOptions {
  data: RunPageData;
  /** The step whose panel is open (by name), if any. */
  selected?: string;
  /** The selected step's events. */
  stepEvents: AuditEventView[];
  /** The selected step's log lines (first page). */
  stepLogs?: PanelProps['stepLogs'];
  /** The BullMQ queue name of a drover queue. */
  bullName: (queue: string) => string;
  /** Bull Board job path of a step job. */
  jobPath: (bullQueueName: string, jobId: string) => string;
}

/** Runs with more steps than this list them instead of drawing the graph (a layout of thousands of nodes takes seconds). */
export const MAX_DRAWN_STEPS = 300;

/** The steps as a list of links, for graphs too large to draw. */
function StepList({ steps }: { steps: Array<{ name: string; status: string; href: string; selected: boolean }> }) {
  return (
    <>
      <p class="muted">{steps.length} steps: too many to draw, so listed.</p>
      <ul class="step-list">
        {steps.map((s) => (
          <li key={s.name}>
            <a href={s.href} class={`status-${s.status}`} data-step={s.name} data-status={s.status} aria-current={s.selected ? 'true' : undefined}>
              {s.name} <span class={`badge status-${s.status}`}>{s.status}</span>
            </a>
          </li>
        ))}
      </ul>
    </>
  );
}

/** A short text of an event's data for the timeline. */
function summary(data: unknown): string {
  if (data === null || data === undefined) return '';
  const text = JSON.stringify(data);
  return text.length > 240 ? `${text.slice(0, 239)}…` : text;
}

function Actions({ status, runId, signals }: { status: string; runId: string; signals: Array<{ step: string; signal: string }> }) {
  const open = status === 'pending' || status === 'running';
  const resumable = status === 'failed' || status === 'cancelled';
  return (
    <div class="actions" role="group" aria-label="Run actions">
      {open ? (
        <button type="button" class="danger" data-action="cancel" data-run={runId}
          data-confirm="Cancel this run? Its queued steps are removed and running steps are told to stop.">Cancel run</button>
      ) : null}
      {resumable ? (
        <button type="button" data-action="retry" data-run={runId}
          data-confirm="Resume this run? Its failed, cancelled and skipped steps start again; succeeded steps keep their outputs.">Resume run</button>
      ) : null}
      {open ? signals.map((w) => (
        <button type="button" key={w.step} data-action="signal" data-run={runId} data-signal={w.signal}
          data-confirm={`Send signal "${w.signal}" to this run? Step ${w.step} waits for it and takes its payload as its output.`}>Send signal</button>
      )) : null}
      <button type="button" data-action="rerun" data-run={runId}
        data-confirm="Start a new run of this workflow with the same input, workspace and priority?">Rerun</button>
    </div>
  );
}

/** Elements a map step lists at most on the page (the counts cover all). */
export const MAX_LISTED_ELEMENTS = 500;

/** Child runs (links to their pages) and each map step's elements: progress and a list. */
function Waits({ data, href }: { data: RunPageData; href: (name: string) => string }) {
  const maps = data.steps.filter((s) => s.map);
  if (data.links.children.length === 0 && maps.length === 0) return null;
  return (
    <section class="waits" aria-labelledby="waits-title">
      <h2 id="waits-title">Child runs and map elements</h2>
      {data.links.children.length ? (
        <>
          <h3 class="small-title">Child runs</h3>
          <ul class="child-runs">
            {data.links.children.map((c) => (
              <li key={c.id} data-child-run={c.id} data-status={c.status}>
                <a class="mono" href={`/runs/${c.id}`}>{c.id}</a> {c.workflow}{c.step ? <> from step <a href={href(c.step)}>{c.step}</a></> : null} <Status status={c.status} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
      {maps.map((m) => {
        const p = m.map!;
        const list = data.elements.get(m.name) ?? [];
        return (
          <div class="map-elements" key={m.name} data-map={m.name}>
            <h3 class="small-title">Map <a href={href(m.name)}>{m.name}</a>: {p.succeeded + p.failed} of {p.total} elements done</h3>
            <progress max={p.total} value={p.succeeded + p.failed} aria-label={`${m.name}: ${p.succeeded + p.failed} of ${p.total} elements done`} />
            <p class="small">{p.succeeded} succeeded · {p.failed} failed or skipped · {p.running} running · {p.waiting} waiting</p>
            <ol class="element-list" start={0}>
              {list.slice(0, MAX_LISTED_ELEMENTS).map((e) => (
                <li key={e.name} data-element={e.name} data-status={e.status}>
                  <a href={href(e.name)}>{e.name}</a> <span class={`badge status-${e.status}`}>{e.status}</span>{e.attempts > 1 ? <span class="small"> {e.attempts} attempts</span> : null}
                </li>
              ))}
            </ol>
            {list.length > MAX_LISTED_ELEMENTS ? <p class="muted">Showing the first {MAX_LISTED_ELEMENTS} of {list.length} elements.</p> : null}
          </div>
        );
      })}
    </section>
  );
}

/**
 * Why the run (or some of its steps) waits on a concurrency key: one line per
 * distinct reason ("Waiting for concurrency key tenant=a (2/2 runs running)"),
 * naming the steps when it is theirs rather than the run's.
 */
function FlowWaits({ steps }: { steps: Array<{ name: string; waitingFor?: string }> }) {
  const reasons = new Map<string, string[]>();
  for (const s of steps) {
    if (!s.waitingFor?.startsWith('concurrency key ')) continue;
    reasons.set(s.waitingFor, [...(reasons.get(s.waitingFor) ?? []), s.name]);
  }
  if (reasons.size === 0) return null;
  return (
    <div class="flow-waits" role="status">
      {[...reasons].map(([reason, names]) => (
        <p key={reason} data-flow-waiting={reason}>
          Waiting for {reason}{reason.endsWith('runs running)') ? '' : ` (step ${names.join(', ')})`}
        </p>
      ))}
    </div>
  );
}

/** The failed run's first failed step (a link to its panel) and its code, in words, above the error's JSON. */
function RunErrorCause({ error, href }: { error: RunError; href: (name: string) => string }) {
  if (typeof error.step !== 'string') return null;
  return (
    <p class="run-error-cause" data-failed-step={error.step}>
      Failed at step <a href={href(error.step)}>{error.step}</a>
      {typeof error.code === 'string' ? <> with code <code>{error.code}</code></> : null}
    </p>
  );
}

/** A run page (`/runs/:id`): summary, actions, DAG, step panel and audit timeline. */
export function runPage(options: RunPageOptions): string {
  const { data } = options;
  const { run } = data;
  const stepNames = new Map([...data.steps, ...[...data.elements.values()].flat()].map((s) => [s.id, s.name]));
  const selected = data.steps.find((s) => s.name === options.selected) ?? [...data.elements.values()].flat().find((s) => s.name === options.selected);
  const href = (name: string) => `/runs/${run.id}?step=${encodeURIComponent(name)}`;
  // Signal steps still waiting (queued): each offers Send signal.
  const waitingSignals = data.steps.filter((s) => s.status === 'queued' && s.processor === WAIT_PROCESSORS.waitFor).map((s) => ({
    step: s.name, signal: run.definition.steps.find((d) => d.name === s.name)?.waitFor?.signal ?? '',
  })).filter((w) => w.signal !== '');
  const dagSteps = data.steps.map((s) => ({ name: s.name, dependsOn: s.dependsOn, status: s.status, href: href(s.name), selected: s.name === selected?.name }));
  return renderPage({ title: `Run ${run.id.slice(0, 8)}`, section: 'runs', live: `/events?run=${run.id}` }, (
    <>
      <p class="crumbs"><a href="/">Runs</a> / <span class="mono">{run.id}</span></p>
      <div id="live">
        <section class="run-summary" data-run-id={run.id} data-run-status={run.status} aria-labelledby="run-title">
          <h1 id="run-title">{run.workflow} <Status status={run.status} /></h1>
          <Actions status={run.status} runId={run.id} signals={waitingSignals} />
          <dl class="facts wide">
            <dt>Run</dt><dd class="mono">{run.id}</dd>
            <dt>Version</dt><dd class="mono">{run.workflowVersion}</dd>
            <dt>Workspace</dt><dd>{run.workspace}</dd>
            <dt>Priority</dt><dd>{run.priority}</dd>
            <dt>Idempotency key</dt><dd class="mono">{run.idempotencyKey ?? '—'}</dd>
            {data.links.parentRunId ? <><dt>Parent run</dt><dd><a class="mono" href={`/runs/${data.links.parentRunId}`} data-parent-run={data.links.parentRunId}>{data.links.parentRunId}</a></dd></> : null}
            <dt>Created</dt><dd><Time at={run.createdAt} /></dd>
            <dt>Started</dt><dd><Time at={run.startedAt} /></dd>
            <dt>Finished</dt><dd><Time at={run.finishedAt} /> {duration(run.startedAt, run.finishedAt)}</dd>
          </dl>
          <FlowWaits steps={data.steps} />
          {run.error ? <div class="run-error" role="note"><h2 class="small-title">Error</h2><RunErrorCause error={run.error} href={href} /><Json value={run.error} /></div> : null}
        </section>
        <div class="run-body">
          <section class="graph" aria-labelledby="graph-title">
            <h2 id="graph-title">Steps</h2>
            <p class="hint">Select a step to see its input, output, attempts and logs.</p>
            {dagSteps.length <= MAX_DRAWN_STEPS
              ? <div class="dag-scroll"><Dag steps={dagSteps} label={`Steps of run ${run.id}`} /></div>
              : <StepList steps={dagSteps} />}
          </section>
          {selected
            ? <StepPanel data={data} step={selected} events={options.stepEvents} stepLogs={options.stepLogs} jobPath={options.jobPath(options.bullName(selected.queue), jobIdOf(selected.id, selected.generation))} />
            : <section class="panel muted" aria-label="Step panel"><p>No step selected.</p></section>}
        </div>
        <Waits data={data} href={href} />
        {run.status === 'succeeded' ? <section aria-labelledby="output-title"><h2 id="output-title">Output</h2><Json value={run.output} /></section> : null}
        <section class="timeline" aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline</h2>
          {data.truncated ? <p class="muted">Showing the newest {data.audit.length} events.</p> : null}
          <table>
            <thead><tr><th scope="col">At (UTC, {data.audit[0]?.at.slice(0, 10) ?? 'today'})</th><th scope="col">Event</th><th scope="col">Step</th><th scope="col">Actor</th><th scope="col">Details</th></tr></thead>
            <tbody>
              {data.audit.map((e) => (
                <tr key={e.id} data-event={e.type}>
                  <td class="nowrap"><Time at={e.at} short /></td>
                  <td class="mono nowrap">{e.type}</td>
                  <td class="nowrap">{e.stepId ? stepNames.get(e.stepId) ?? e.stepId : ''}</td>
                  <td class="mono small nowrap">{e.actor}</td>
                  <td class="mono small">{summary(e.data)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
      <ConfirmDialog />
      <dialog id="signal-dialog" aria-labelledby="signal-title">
        <form method="dialog">
          <h2 id="signal-title">Send signal</h2>
          <p id="signal-text" />
          <label for="signal-payload">Payload (JSON; empty sends null)</label>
          <textarea id="signal-payload" name="payload" rows={4} spellcheck={false} />
          <div class="dialog-buttons">
            <button type="submit" value="cancel">Back</button>
            <button type="submit" value="confirm" class="primary" id="signal-send">Send</button>
          </div>
        </form>
      </dialog>
    </>
  ));
}
