/**
 * The crawl pipeline of seed 002 (Sonoma) on drover: plan → fetch (a map step,
 * one per URL) → parse (a map over the fetched pages) → store in batches that
 * answer `{stored, failed, errors: [{id, error}]}`; a domain's priority orders
 * its runs' steps ahead of another's; `crawl-retention` deletes old documents.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Drover } from '../../src/drover';
import { workflow } from '../../src/workflows/builder';
import { storeBatch, type BatchResult, type ParsedPage } from './store';

/** A document's id: a UUID derived from its URL (a re-crawl keeps it). */
export function documentId(url: string): string {
  const h = createHash('sha256').update(url).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const FETCH_ATTEMPTS = 3;
const MAX_BODY_BYTES = 256 * 1024;

type Fetched = { id: string; url: string; domain: string; status?: number; contentType?: string; size?: number; lastModified?: string | null; html?: string; error?: string };

const wf = workflow('crawl', {
  input: z.object({
    domain: z.string().min(1).max(253),
    urls: z.array(z.string().url().refine((u) => /^https?:\/\//.test(u), 'only http and https')).min(1).max(1000),
    batchSize: z.number().int().min(1).max(500).default(50),
  }),
});

const plan = wf.step('plan', { queue: 'crawl' }, ({ input }) => ({
  pages: [...new Set(input.urls)].map((url) => ({ id: documentId(url), url })),
}));

const fetched = wf.map('fetch', { over: plan, path: 'pages', queue: 'crawl', concurrency: 4, attempts: FETCH_ATTEMPTS, backoff: { type: 'fixed', delayMs: 100 }, timeoutMs: 15_000 },
  async (ctx): Promise<Fetched> => {
    const { id, url } = ctx.item as { id: string; url: string };
    const base = { id, url, domain: ctx.input.domain };
    const last = ctx.step.attempt >= FETCH_ATTEMPTS;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]), redirect: 'follow' });
    } catch (error) {
      if (!last) throw error; // retried with backoff
      return { ...base, error: `fetch failed: ${(error as Error).message}` };
    }
    if (res.status >= 500 && !last) throw new Error(`HTTP ${res.status} from ${url}`);
    if (res.status !== 200) {
      await res.body?.cancel();
      return { ...base, status: res.status, error: `HTTP ${res.status}` };
    }
    const body = Buffer.from(await res.arrayBuffer());
    const contentType = res.headers.get('content-type') ?? 'application/octet-stream';
    ctx.log(`${url}: ${res.status}, ${contentType}, ${body.length} bytes`);
    const modified = res.headers.get('last-modified');
    return {
      ...base, status: res.status, contentType, size: body.length,
      lastModified: modified && !Number.isNaN(Date.parse(modified)) ? new Date(modified).toISOString() : null,
      // Only HTML is kept for parsing (a binary body is not JSON-safe text), cut at 256 KiB, NULs dropped.
      ...(contentType.startsWith('text/html') ? { html: body.subarray(0, MAX_BODY_BYTES).toString('utf8').replace(/\u0000/g, '') } : {}),
    };
  });

const parsed = wf.map('parse', { over: fetched, queue: 'crawl' }, (ctx): ParsedPage => {
  const page = ctx.item as Fetched;
  const base = { id: page.id, url: page.url, domain: page.domain };
  if (page.error !== undefined) return { ...base, error: page.error };
  if (!page.contentType?.startsWith('text/html')) return { ...base, error: `not HTML: ${page.contentType}` };
  const title = /<title>([\s\S]*?)<\/title>/i.exec(page.html ?? '')?.[1]?.trim();
  if (!title) return { ...base, error: 'no <title>' };
  return {
    ...base, title, links: (page.html!.match(/<a\s/gi) ?? []).length, contentType: page.contentType, size: page.size!,
    lastModified: page.lastModified ?? null, crawledAt: new Date().toISOString(),
  };
});

const stored = wf.step('store', { parents: [parsed], queue: 'crawl' }, async (ctx) => {
  const pages = ctx.parents.parse;
  const total: BatchResult = { stored: 0, failed: 0, errors: [] };
  // Every batch commits with the step's success (ctx.transaction): a retried store writes each document once.
  await ctx.transaction(async (m) => {
    for (let i = 0; i < pages.length; i += ctx.input.batchSize) {
      const batch = await storeBatch(m, pages.slice(i, i + ctx.input.batchSize));
      ctx.log(`batch ${i / ctx.input.batchSize}: stored ${batch.stored}, failed ${batch.failed}`);
      total.stored += batch.stored;
      total.failed += batch.failed;
      total.errors.push(...batch.errors);
    }
  });
  return total;
});

export const crawl = wf.output(stored);

const ret = workflow('crawl-retention', { input: z.object({ olderThanDays: z.number().int().min(1).max(36_500).default(30), chunk: z.number().int().min(1).max(10_000).default(1000) }) });
const pruned = ret.step('prune', { queue: 'crawl' }, async (ctx) => {
  let deleted = 0;
  // Chunks of `chunk` rows, each its own short statement, all committed with the step.
  await ctx.transaction(async (m) => {
    for (;;) {
      const rows: Array<{ n: number }> = await m.query(
        `WITH d AS (DELETE FROM example_crawl.documents WHERE id IN (
            SELECT id FROM example_crawl.documents WHERE crawled_at < now() - make_interval(days => $1) ORDER BY crawled_at LIMIT $2)
          RETURNING 1) SELECT count(*)::int AS n FROM d`, [ctx.input.olderThanDays, ctx.input.chunk]);
      deleted += rows[0].n;
      if (rows[0].n < ctx.input.chunk) break;
    }
  });
  return { deleted };
});
export const crawlRetention = ret.output(pruned);

export const workflows = [crawl, crawlRetention];
/** Nightly retention, for a module served by `drover worker --module` (a worker stores module schedules when it starts). */
export const schedules = [{ name: 'crawl-retention-nightly', workflow: 'crawl-retention', cron: '0 3 * * *', input: { olderThanDays: 30 } }];

/** Anything that runs SQL: a `pg` Pool or drover's `Sql`. */
export interface Queryable { query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[] | { rows: R[] }> }

/**
 * Starts a crawl of a domain with the domain's priority (`example_crawl.domains`;
 * 1 is first, an unknown domain none): every step of the run is queued with it,
 * so a preferred domain's fetches go ahead of another's.
 */
export async function startCrawl(drover: Drover, db: Queryable, input: { domain: string; urls: string[]; batchSize?: number }) {
  const answer = await db.query<{ priority: number }>(`SELECT priority FROM example_crawl.domains WHERE domain = $1`, [input.domain]);
  const rows = Array.isArray(answer) ? answer : answer.rows;
  return drover.start(crawl, input, { priority: rows[0]?.priority ?? 0 });
}
