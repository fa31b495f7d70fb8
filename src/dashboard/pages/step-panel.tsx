import { Fragment } from 'preact';
import type { AuditEventView } from '../../types';
import { duration, Json, Status, Time } from '../layout';
import type { RunPageData, RunPageStep } from '../queries';

/** One attempt of a step as the audit trail tells it. */
export interface Attempt {
  /** The resume round it belongs to (0: before any resume). */
  round: number;
  attempt: number;
  startedAt: string | null;
  endedAt: string | null;
  outcome: 'running' | 'succeeded' | 'failed' | 'retrying' | 'cancelled';
  error: unknown;
  worker: string | null;
}

/**
 * The attempts of a step from its events: `step.started` opens one,
 * `step.succeeded`, `step.attempt_failed` and `step.failed` close it (and
 * carry `startedAt` when a quick attempt recorded its start with its outcome).
 * A resume (`run.retried`) starts a new round, whose attempts count from 1.
 */
export function attemptsOf(events: AuditEventView[], stepId: string): Attempt[] {
  const attempts: Attempt[] = [];
  let round = 0;
  const current = (attempt: number): Attempt => {
    let a = attempts.find((x) => x.round === round && x.attempt === attempt);
    if (!a) {
      a = { round, attempt, startedAt: null, endedAt: null, outcome: 'running', error: null, worker: null };
      attempts.push(a);
    }
    return a;
  };
  for (const e of events) {
    if (e.type === 'run.retried') {
      round++;
      continue;
    }
    if (e.stepId !== stepId) continue;
    const data = (e.data ?? {}) as { attempt?: number; error?: unknown; startedAt?: string; worker?: string };
    const n = typeof data.attempt === 'number' ? data.attempt : 0;
    switch (e.type) {
      case 'step.started': {
        const a = current(n);
        // A start written at the threshold says when the attempt really began.
        a.startedAt = data.startedAt ?? e.at;
        a.worker = data.worker ?? a.worker;
        break;
      }
      case 'step.succeeded':
      case 'step.attempt_failed':
      case 'step.failed': {
        if (e.type === 'step.failed' && attempts.some((x) => x.round === round && x.attempt === n && x.outcome === 'retrying')) {
          // A final failure recorded together with its attempt's failure: one attempt, failed for good.
          current(n).outcome = 'failed';
          break;
        }
        const a = current(n);
        a.startedAt = a.startedAt ?? data.startedAt ?? null;
        a.worker = a.worker ?? data.worker ?? null;
        a.endedAt = e.at;
        a.error = data.error ?? null;
        a.outcome = e.type === 'step.succeeded' ? 'succeeded' : e.type === 'step.failed' ? 'failed' : 'retrying';
        break;
      }
      case 'step.cancelled': {
        const open = attempts.find((x) => x.round === round && x.outcome === 'running');
        if (open) {
          open.outcome = 'cancelled';
          open.endedAt = e.at;
        }
        break;
      }
      default:
        break;
    }
  }
  return attempts.filter((a) => a.attempt > 0);
}

/** The path of a step's job in Bull Board: `/admin/queues/queue/<BullMQ queue name>/<job id>`. */
export function bullBoardJobPath(bullQueueName: string, jobId: string): string {
  return `/admin/queues/queue/${encodeURIComponent(bullQueueName)}/${encodeURIComponent(jobId)}`;
}

/** What the panel needs besides the run: the selected step and its job's Bull Board path. */
export interface PanelProps {
  data: RunPageData;
  step: RunPageStep;
  /** The step's own events (see `DashboardQueries.stepEvents`). */
  events: AuditEventView[];
  /** The step's `ctx.log` lines (step logs), oldest first; at most one page. */
  stepLogs?: { items: Array<{ id: string; at: string; attempt: number; message: string }>; nextCursor: string | null };
  jobPath: string;
}

/** The step panel: input, parents' outputs, output, error, attempts, logs, and the Bull Board job. */
export function StepPanel({ data, step, events, stepLogs, jobPath }: PanelProps) {
  const parents = data.steps.filter((s) => step.dependsOn.includes(s.name));
  const attempts = attemptsOf(events, step.id);
  // Lines written before step logs had their own table are audit events; newer ones are step logs.
  const logs = [
    ...events.filter((e) => e.type === 'step.log' && e.stepId === step.id)
      .map((e) => ({ id: `a${e.id}`, at: e.at, attempt: Number((e.data as { attempt?: unknown } | null)?.attempt ?? 0), message: String((e.data as { message?: unknown } | null)?.message ?? '') })),
    ...(stepLogs?.items ?? []),
  ];
  return (
    <section class="panel" aria-labelledby="panel-title" data-panel-step={step.name}>
      <h2 id="panel-title">Step {step.name} <Status status={step.status} /></h2>
      <dl class="facts">
        <dt>Processor</dt><dd class="mono">{step.processor}</dd>
        <dt>Queue</dt><dd class="mono">{step.queue}</dd>
        <dt>Attempts</dt><dd>{step.attempts} of {step.maxAttempts}</dd>
        <dt>Queued</dt><dd><Time at={step.queuedAt} /></dd>
        <dt>Started</dt><dd><Time at={step.startedAt} /></dd>
        <dt>Finished</dt><dd><Time at={step.finishedAt} /></dd>
        {step.waitingFor ? <><dt>Waiting for</dt><dd>{step.waitingFor}</dd></> : null}
        <dt>Job</dt><dd><a href={jobPath}>Open the job in Bull Board</a></dd>
      </dl>
      <h3>Input</h3>
      <Json value={data.run.input} />
      <h3>Parents' outputs</h3>
      {parents.length === 0 ? <p class="muted">No parents: a root step.</p> : parents.map((p) => (
        <div key={p.name} class="parent">
          <h4>{p.name} <Status status={p.status} /></h4>
          <Json value={p.output} />
        </div>
      ))}
      <h3>Output</h3>
      <Json value={step.output} />
      <h3>{step.status === 'succeeded' && step.error ? 'Error of an earlier attempt' : 'Error'}</h3>
      <Json value={step.error} />
      <h3>Attempts</h3>
      {attempts.length === 0 ? <p class="muted">No attempt yet.</p> : (
        <table class="attempts">
          <thead><tr><th scope="col">Attempt</th><th scope="col">Outcome</th><th scope="col">Started (UTC)</th><th scope="col">Ended</th><th scope="col">Took</th></tr></thead>
          <tbody>
            {attempts.map((a) => (
              <Fragment key={`${a.round}-${a.attempt}`}>
                <tr data-attempt={a.attempt}>
                  <td>{a.round > 0 ? `${a.attempt} (resume ${a.round})` : a.attempt}</td>
                  <td><Status status={a.outcome} /></td>
                  <td><Time at={a.startedAt} short /></td>
                  <td><Time at={a.endedAt} short /></td>
                  <td>{duration(a.startedAt, a.endedAt)}</td>
                </tr>
                {a.error ? <tr class="attempt-error"><td colSpan={5}>{errorMessage(a.error)}</td></tr> : null}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      <h3>Logs</h3>
      {logs.length === 0 ? <p class="muted">No log lines.</p> : (
        <ol class="logs" data-step-logs={step.name}>
          {logs.map((e) => (
            <li key={e.id}><Time at={e.at} short /> <span class="muted small">#{e.attempt}</span> <span class="mono">{e.message}</span></li>
          ))}
        </ol>
      )}
      {stepLogs?.nextCursor ? <p class="muted small">More lines: <a href={`/api/runs/${encodeURIComponent(data.run.id)}/steps/${encodeURIComponent(step.name)}/logs?cursor=${stepLogs.nextCursor}`}>the next page of the log (JSON)</a></p> : null}
    </section>
  );
}

/** The message of a stored error (`{message, …}`), or its JSON. */
export function errorMessage(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : JSON.stringify(error);
}
