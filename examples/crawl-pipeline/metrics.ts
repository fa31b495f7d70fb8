import { Gauge, type Registry } from 'prom-client';
import type { Queryable } from './workflows';

/**
 * The pipeline's Prometheus metrics, in the registry given (drover's, so they
 * are served on its `/metrics` beside `drover_queue_jobs{queue="crawl",state}`,
 * the crawl queue's sizes): `crawl_documents{domain,status}`, read from
 * Postgres at scrape time (exact, whatever process stored them).
 */
export function registerCrawlMetrics(registry: Registry, db: Queryable): void {
  new Gauge({
    name: 'crawl_documents', help: 'Documents stored, by domain and status', labelNames: ['domain', 'status'], registers: [registry],
    async collect() {
      const answer = await db.query<{ domain: string; status: string; n: number }>(
        `SELECT domain, status, count(*)::int AS n FROM example_crawl.documents GROUP BY domain, status`);
      this.reset();
      for (const r of Array.isArray(answer) ? answer : answer.rows) this.set({ domain: r.domain, status: r.status }, r.n);
    },
  });
}
