import type { ScheduleView } from '../../schedules/schedule-store';
import { renderPage, Status, Time, ConfirmDialog } from '../layout';

/** A run of a schedule as the page shows it. */
export interface ScheduleRunRow {
  id: string;
  status: string;
  createdAt: string;
}

/** `/schedules`: each schedule with its cron, next fire time, state, latest runs, and pause or resume. */
export function schedulesPage(schedules: ScheduleView[], runs: Map<string, ScheduleRunRow>, canChange: boolean): string {
  return renderPage({ title: 'Schedules', section: 'schedules', live: '/events' }, (
    <>
      <h1>Schedules</h1>
      <div id="live">
        {schedules.length === 0 ? <p class="empty">No schedule yet: create one with <span class="mono">POST /api/schedules</span>, <span class="mono">drover schedules create</span>, or a module's <span class="mono">schedules</span> export.</p> : (
          <table class="schedules">
            <thead>
              <tr>
                <th scope="col">Schedule</th><th scope="col">Workflow</th><th scope="col">Cron</th><th scope="col">State</th>
                <th scope="col">Next fire (UTC)</th><th scope="col">Last fired</th><th scope="col">Policies</th><th scope="col">Latest runs</th><th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {schedules.map((s) => (
                <tr key={s.name} data-schedule={s.name} data-paused={String(s.paused)}>
                  <th scope="row" class="mono">{s.name}</th>
                  <td><a href={`/?workflow=${encodeURIComponent(s.workflow)}`}>{s.workflow}</a></td>
                  <td class="mono">{s.cron}{s.timezone !== 'UTC' ? <span class="muted small"> ({s.timezone})</span> : null}</td>
                  <td><Status status={s.paused ? 'paused' : 'active'} /></td>
                  <td data-next-fire={s.nextFireAt ?? ''}>{s.paused ? <span class="muted">— (paused)</span> : <Time at={s.nextFireAt} />}</td>
                  <td>{s.lastFireAt ? <><Time at={s.lastFireAt} />{s.lastLagSeconds !== null ? <span class="muted small"> ({s.lastLagSeconds.toFixed(3)} s late)</span> : null}</> : <span class="muted">never</span>}</td>
                  <td class="small">overlap {s.overlap}, catch-up {s.catchUp}{s.source === 'module' ? ', from a module' : ''}</td>
                  <td>
                    {s.recentRunIds.length === 0 ? <span class="muted">none yet</span> : (
                      <ul class="schedule-runs">
                        {s.recentRunIds.slice(0, 5).map((id) => {
                          const run = runs.get(id);
                          return (
                            <li key={id}>
                              {run ? <><a href={`/runs/${id}`} class="mono" data-run-id={id} data-status={run.status}>{id.slice(0, 8)}</a> <span class={`run-state status-${run.status}`}>{run.status}</span></>
                                : <span class="muted mono" title="deleted by retention">{id.slice(0, 8)} (gone)</span>}
                            </li>
                          );
                        })}
                      </ul>
                    )}
                  </td>
                  <td>
                    {!canChange ? <span class="muted small">admin key needed</span> : s.paused
                      ? <button type="button" data-action="resume" data-url={`/api/schedules/${encodeURIComponent(s.name)}/resume`}
                          data-confirm={`Resume schedule ${s.name}? It fires from its next tick on; ticks missed while paused do not fire.`}>Resume</button>
                      : <button type="button" class="danger" data-action="pause" data-url={`/api/schedules/${encodeURIComponent(s.name)}/pause`}
                          data-confirm={`Pause schedule ${s.name}? No run starts until it is resumed.`}>Pause</button>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
      <ConfirmDialog />
    </>
  ));
}
