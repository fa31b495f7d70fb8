import { renderPage } from '../layout';
import type { MinuteBucket } from '../queries';

/** Job counts of one queue by BullMQ state. */
export interface QueueRow {
  /** The drover queue name. */
  queue: string;
  /** The BullMQ queue name (Bull Board's). */
  bullName: string;
  counts: Record<string, number>;
  /** Set when the counts could not be read (store unreachable). */
  error?: string;
}

/** The job states shown, in order. */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

const W = 720;
const H = 180;
const PAD = { left: 40, right: 8, top: 10, bottom: 24 };

/** Steps finished (succeeded) and failed per minute over the last hour, as a bar chart in SVG. */
export function MinuteChart({ buckets }: { buckets: MinuteBucket[] }) {
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const barW = plotW / buckets.length;
  const y = (n: number) => (n / max) * plotH;
  const total = buckets.reduce((acc, b) => ({ s: acc.s + b.succeeded, f: acc.f + b.failed }), { s: 0, f: 0 });
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img"
        aria-label={`Steps per minute over the last hour: ${total.s} succeeded, ${total.f} failed`}>
        <line class="axis" x1={PAD.left} y1={PAD.top + plotH} x2={W - PAD.right} y2={PAD.top + plotH} />
        <text class="axis-label" x={PAD.left - 6} y={PAD.top + 8} text-anchor="end">{max}</text>
        <text class="axis-label" x={PAD.left - 6} y={PAD.top + plotH} text-anchor="end">0</text>
        {buckets.map((b, i) => {
          const x = PAD.left + i * barW;
          const hs = y(b.succeeded);
          const hf = y(b.failed);
          const label = b.minute.toISOString().slice(11, 16);
          return (
            <g key={i}>
              <title>{`${label} UTC: ${b.succeeded} succeeded, ${b.failed} failed`}</title>
              <rect class="bar-succeeded" x={x + 1} y={PAD.top + plotH - hs} width={Math.max(1, barW - 2)} height={hs} />
              <rect class="bar-failed" x={x + 1} y={PAD.top + plotH - hs - hf} width={Math.max(1, barW - 2)} height={hf} />
              {i % 10 === 0 ? <text class="axis-label" x={x} y={H - 6}>{label}</text> : null}
            </g>
          );
        })}
      </svg>
      <figcaption>
        Steps per minute, last hour (UTC), from the audit trail:{' '}
        <span class="legend legend-succeeded">succeeded {total.s}</span>{' '}
        <span class="legend legend-failed">failed for good {total.f}</span>
      </figcaption>
    </figure>
  );
}

/** `/queues`: job counts per queue with links into Bull Board, and the steps-per-minute chart. */
export function queuesPage(rows: QueueRow[], buckets: MinuteBucket[], backend: string): string {
  return renderPage({ title: 'Queues', section: 'queues' }, (
    <>
      <h1>Queues</h1>
      <p>Queues live in {backend === 'redis' ? 'Redis' : "BullMQ's PostgreSQL backend"}. Counts are BullMQ's jobs now; finished jobs are trimmed by retention.</p>
      <table class="queues">
        <thead>
          <tr><th scope="col">Queue</th>{QUEUE_STATES.map((s) => <th key={s} scope="col">{s}</th>)}<th scope="col">Bull Board</th></tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.queue} data-queue={r.queue}>
              <td class="mono">{r.queue}</td>
              {r.error
                ? <td colSpan={QUEUE_STATES.length} class="error-text">{r.error}</td>
                : QUEUE_STATES.map((s) => <td key={s} data-state={s}>{(r.counts[s] ?? 0).toLocaleString('en')}</td>)}
              <td><a href={`/admin/queues/queue/${encodeURIComponent(r.bullName)}`}>Open {r.bullName}</a></td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Throughput</h2>
      <MinuteChart buckets={buckets} />
    </>
  ));
}
