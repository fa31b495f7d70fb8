import type { ComponentChildren, VNode } from 'preact';
import { render } from 'preact-render-to-string';

/** Where a page sits in the navigation. */
export type Section = 'runs' | 'workflows' | 'workers' | 'schedules' | 'queues';

const NAV: Array<[Section, string, string]> = [
  ['runs', '/', 'Runs'],
  ['workflows', '/workflows', 'Workflows'],
  ['workers', '/workers', 'Workers'],
  ['schedules', '/schedules', 'Schedules'],
  ['queues', '/queues', 'Queues'],
];

/** What the shell of a page needs. */
export interface PageOptions {
  title: string;
  section?: Section;
  /**
   * The event stream that refreshes the page's live region (`#live`) when
   * runs change: `/events` (any run) or `/events?run=<id>`. Absent: static.
   */
  live?: string;
}

/**
 * The shared layout: navigation, the main region, and the page's assets
 * (served from `/assets/`, nothing from another host; no inline script or
 * style, for the Content-Security-Policy).
 */
export function Layout({ options, children }: { options: PageOptions; children: ComponentChildren }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${options.title} · drover`}</title>
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href="/assets/app.css" />
        <script src="/assets/app.js" defer />
      </head>
      <body data-live={options.live}>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/">drover</a>
          <nav aria-label="Main">
            <ul>
              {NAV.map(([section, href, label]) => (
                <li key={section}>
                  <a href={href} aria-current={options.section === section ? 'page' : undefined}>{label}</a>
                </li>
              ))}
              <li><a href="/admin/queues">Bull Board</a></li>
            </ul>
          </nav>
          {options.live ? <span class="live-state" id="live-state" role="status" aria-live="polite">live</span> : null}
          <form class="signout" method="post" action="/logout">
            <button type="submit">Sign out</button>
          </form>
        </header>
        <main id="main" tabIndex={-1}>{children}</main>
      </body>
    </html>
  );
}

/** A whole HTML document for a page. */
export function renderPage(options: PageOptions, body: VNode): string {
  return `<!doctype html>${render(<Layout options={options}>{body}</Layout>)}`;
}

/** An error page (404, 400) with a way back. */
export function errorPage(status: number, title: string, message: string): string {
  return renderPage({ title }, (
    <section class="error-page">
      <h1>{title}</h1>
      <p class="error-status">HTTP {status}</p>
      <p>{message}</p>
      <p><a href="/">Back to the runs</a></p>
    </section>
  ));
}

/** A timestamp as `YYYY-MM-DD HH:MM:SS` UTC (`short`: `HH:MM:SS.mmm`), in a `<time>` element; a dash when absent. */
export function Time({ at, short }: { at: string | Date | null | undefined; short?: boolean }) {
  if (!at) return <span class="muted">—</span>;
  const iso = new Date(at).toISOString();
  return <time dateTime={iso} title={iso}>{short ? iso.slice(11, 23) : iso.slice(0, 19).replace('T', ' ')}</time>;
}

/** A state as a badge: its name in text, its colour from the stylesheet. */
export function Status({ status }: { status: string }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}

/** A JSON value, pretty-printed (escaped like every text the renderer writes). */
export function Json({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span class="muted">none</span>;
  return <pre class="json">{JSON.stringify(value, null, 2)}</pre>;
}

/** How long between two times, in words (`1.2 s`, `3 min 4 s`); empty when either is absent. */
export function duration(from: string | null | undefined, to: string | null | undefined): string {
  if (!from || !to) return '';
  const ms = new Date(to).getTime() - new Date(from).getTime();
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** The confirmation dialog of a page's action buttons (`data-action`, `data-confirm`; app.js opens it), and where a refusal is shown. */
export function ConfirmDialog() {
  return (
    <>
      <dialog id="confirm" aria-labelledby="confirm-title">
        <form method="dialog">
          <h2 id="confirm-title">Are you sure?</h2>
          <p id="confirm-text" />
          <div class="dialog-buttons">
            <button type="submit" value="cancel">Back</button>
            <button type="submit" value="confirm" class="primary" id="confirm-yes">Confirm</button>
          </div>
        </form>
      </dialog>
      <p id="action-error" class="action-error" role="alert" />
    </>
  );
}
