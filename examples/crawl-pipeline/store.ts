import type { EntityManager } from 'typeorm';

/** A parsed page, or the reason it could not be fetched or parsed. */
export type ParsedPage = {
  id: string; url: string; domain: string;
  title?: string; links?: number; contentType?: string; size?: number; lastModified?: string | null; crawledAt?: string;
  error?: string;
};
/** The seed's batch answer. */
export type BatchResult = { stored: number; failed: number; errors: Array<{ id: string; error: string }> };

/**
 * Stores one batch of documents (the seed's `POST /api/documents`): each page
 * under a savepoint, so one bad row (a fetch or parse error carried along, or
 * a constraint of the table) is reported in `errors` and the others are kept.
 * A re-crawled URL updates its row.
 */
export async function storeBatch(m: EntityManager, pages: ParsedPage[]): Promise<BatchResult> {
  const result: BatchResult = { stored: 0, failed: 0, errors: [] };
  for (const page of pages) {
    if (page.error !== undefined) {
      result.failed++;
      result.errors.push({ id: page.id, error: page.error });
      continue;
    }
    await m.query('SAVEPOINT doc');
    try {
      await m.query(
        `INSERT INTO example_crawl.documents (id, url, domain, title, links, content_type, size, status, crawled_at, last_modified)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'stored', $8, $9)
         ON CONFLICT (url) DO UPDATE SET title = EXCLUDED.title, links = EXCLUDED.links, content_type = EXCLUDED.content_type,
           size = EXCLUDED.size, crawled_at = EXCLUDED.crawled_at, last_modified = EXCLUDED.last_modified, updated_at = now()`,
        [page.id, page.url, page.domain, page.title, page.links, page.contentType, page.size, page.crawledAt, page.lastModified ?? null]);
      await m.query('RELEASE SAVEPOINT doc');
      result.stored++;
    } catch (error) {
      await m.query('ROLLBACK TO SAVEPOINT doc');
      result.failed++;
      result.errors.push({ id: page.id, error: (error as Error).message });
    }
  }
  return result;
}
