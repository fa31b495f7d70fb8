import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeEachBackend } from './helpers/env';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { crawl, crawlRetention, documentId, schedules, startCrawl } from '../examples/crawl-pipeline/workflows';
import { crawlEntities, crawlMigrations, CRAWL_MIGRATIONS_TABLE } from '../examples/crawl-pipeline/schema';
import { registerCrawlMetrics } from '../examples/crawl-pipeline/metrics';
import { migrateExample } from '../examples/shared/migrate';
import { createApp } from '../src/http/app';

/** A small site on loopback: the pipeline never leaves the machine. */
function startSite(): Promise<{ server: Server; base: string; requests: string[] }> {
  const requests: string[] = [];
  let flaky = 0;
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    const html = (title: string, links = 0) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'last-modified': 'Tue, 01 Dec 2026 10:00:00 GMT' });
      res.end(`<html><head><title>${title}</title></head><body>${'<a href="/x">x</a>'.repeat(links)}</body></html>`);
    };
    if (path === '/missing') { res.writeHead(404); res.end('no'); return; }
    if (path === '/image') { res.writeHead(200, { 'content-type': 'image/png' }); res.end(Buffer.alloc(10)); return; }
    if (path === '/long') return html('t'.repeat(300));
    if (path === '/flaky' && flaky++ === 0) { res.writeHead(503); res.end('busy'); return; }
    html(`page ${path}`, 2);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests })));
}

describeEachBackend('example crawl-pipeline', (backend) => {
  let engine: EngineHarness;
  let site: Awaited<ReturnType<typeof startSite>>;
  beforeEach(async () => {
    engine = await createEngine(backend);
    await migrateExample(engine.databaseUrl, { entities: crawlEntities, migrations: crawlMigrations, migrationsTableName: CRAWL_MIGRATIONS_TABLE });
    site = await startSite();
  });
  afterEach(async () => {
    await engine.close();
    await new Promise((r) => site.server.close(r));
  });
  const docs = (domain: string) => engine.sql.query<{ url: string; title: string; links: number }>(`SELECT url, title, links FROM example_crawl.documents WHERE domain = $1 ORDER BY url`, [domain]);

  it('fetches, parses and stores in batches, answering per-item errors; metrics count the documents', async () => {
    await engine.startWorker({ workflows: [crawl, crawlRetention] });
    const urls = ['/1', '/2', '/missing', '/image', '/long', '/flaky'].map((p) => site.base + p);
    const run = await engine.drover.start(crawl, { domain: 'a.test', urls, batchSize: 2 });
    const result = await run.result({ timeoutMs: 25_000 });
    expect(result.stored).toBe(3);
    expect(result.failed).toBe(3);
    expect(result.errors).toEqual([
      { id: documentId(site.base + '/missing'), error: 'HTTP 404' },
      { id: documentId(site.base + '/image'), error: 'not HTML: image/png' },
      { id: documentId(site.base + '/long'), error: expect.stringContaining('check constraint') },
    ]);
    expect(await docs('a.test')).toEqual(['/1', '/2', '/flaky'].map((p) => ({ url: site.base + p, title: `page ${p}`, links: 2 })));
    expect(site.requests.filter((p) => p === '/flaky')).toHaveLength(2); // 503, then retried
    const logs = (await engine.drover.getStepLogs(run.id, 'store')).items.map((l) => l.message);
    expect(logs).toEqual(['batch 0: stored 2, failed 0', 'batch 1: stored 0, failed 2', 'batch 2: stored 1, failed 1']);

    // The pipeline's gauge in drover's registry: served on drover's /metrics with the crawl queue's sizes.
    registerCrawlMetrics(engine.drover.metrics.registry, engine.sql);
    const droverApp = createApp({ drover: engine.drover, auth: false, queueGaugeCacheMs: 0, queueRefreshIntervalMs: 200 });
    const server = droverApp.app.listen(0, '127.0.0.1');
    try {
      await new Promise((r) => server.once('listening', r));
      const scrape = async () => (await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`)).text();
      // The server learns the workflows' queues (crawl) from the registry shortly after it starts.
      const text = await eventually(async () => { const t = await scrape(); return t.includes('drover_queue_jobs{queue="crawl"') ? t : null; }, 10_000, 'the crawl queue in /metrics');
      expect(text).toContain('crawl_documents{domain="a.test",status="stored"} 3');
      expect(text).toMatch(/drover_queue_jobs\{queue="crawl",state="waiting"\} 0/);
    } finally {
      droverApp.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('serves a preferred domain first: its steps go ahead of another domain\'s queued before it', async () => {
    await engine.sql.query(`INSERT INTO example_crawl.domains (domain, priority) VALUES ('fast.test', 1), ('slow.test', 50)`);
    await engine.drover.registerWorkflows([crawl]); // what a deploy's first worker does; no worker runs yet
    const slow = await startCrawl(engine.drover, engine.sql, { domain: 'slow.test', urls: ['/s1', '/s2', '/s3'].map((p) => site.base + p) });
    const fast = await startCrawl(engine.drover, engine.sql, { domain: 'fast.test', urls: ['/f1', '/f2', '/f3'].map((p) => site.base + p) });
    // One worker slot, started once both runs are queued: the order is the queue's.
    await engine.startWorker({ workflows: [crawl], concurrency: 1 });
    await Promise.all([slow.result({ timeoutMs: 25_000 }), fast.result({ timeoutMs: 25_000 })]);
    expect(site.requests).toEqual(['/f1', '/f2', '/f3', '/s1', '/s2', '/s3']);
    expect(await docs('fast.test')).toHaveLength(3);
    expect(await docs('slow.test')).toHaveLength(3);
  });

  it('retention deletes documents older than the limit and keeps the recent ones; its nightly schedule is stored', async () => {
    await engine.startWorker({ workflows: [crawl, crawlRetention], schedules });
    expect(await engine.sql.query(`SELECT name, workflow, cron FROM drover.schedules`)).toEqual([{ name: 'crawl-retention-nightly', workflow: 'crawl-retention', cron: '0 3 * * *' }]);
    await engine.sql.query(`INSERT INTO example_crawl.documents (id, url, domain, title, links, content_type, size, status, crawled_at)
      SELECT gen_random_uuid(), 'http://old.test/' || i, 'old.test', 't', 0, 'text/html', 1, 'stored', now() - interval '40 days' FROM generate_series(1, 25) i
      UNION ALL SELECT gen_random_uuid(), 'http://new.test/' || i, 'new.test', 't', 0, 'text/html', 1, 'stored', now() - interval '1 day' FROM generate_series(1, 5) i`);
    const run = await engine.drover.start(crawlRetention, { olderThanDays: 30, chunk: 10 });
    expect(await run.result({ timeoutMs: 20_000 })).toEqual({ deleted: 25 });
    expect(await engine.sql.query(`SELECT domain, count(*)::int AS n FROM example_crawl.documents GROUP BY domain`)).toEqual([{ domain: 'new.test', n: 5 }]);
  });
});
