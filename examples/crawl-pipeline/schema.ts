/** The crawl example's own tables (schema `example_crawl`, migrations table `example_crawl_migrations`), beside drover's. */
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';

export interface CrawlDocument {
  id: string; url: string; domain: string; title: string; links: number; contentType: string; size: number;
  status: string; crawledAt: Date; lastModified: Date | null;
}
export const DocumentEntity = new EntitySchema<CrawlDocument>({
  name: 'CrawlDocument', tableName: 'documents', schema: 'example_crawl',
  columns: {
    id: { type: 'uuid', primary: true },
    url: { type: 'text', unique: true },
    domain: { type: 'text' },
    title: { type: 'text' },
    links: { type: 'int' },
    contentType: { name: 'content_type', type: 'text' },
    size: { type: 'int' },
    status: { type: 'text' },
    crawledAt: { name: 'crawled_at', type: 'timestamptz' },
    lastModified: { name: 'last_modified', type: 'timestamptz', nullable: true },
  },
});

/** A domain's priority: 1 is first (BullMQ's priority), 0 none. */
export interface Domain { domain: string; priority: number }
export const DomainEntity = new EntitySchema<Domain>({
  name: 'CrawlDomain', tableName: 'domains', schema: 'example_crawl',
  columns: { domain: { type: 'text', primary: true }, priority: { type: 'int' } },
});

export class CreateCrawlTables1765800200000 implements MigrationInterface {
  name = 'CreateCrawlTables1765800200000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS example_crawl`);
    await q.query(`CREATE TABLE example_crawl.documents (id uuid PRIMARY KEY, url text NOT NULL UNIQUE, domain text NOT NULL,
      title text NOT NULL CHECK (char_length(title) <= 200), links int NOT NULL, content_type text NOT NULL, size int NOT NULL,
      status text NOT NULL, crawled_at timestamptz NOT NULL, last_modified timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())`);
    // Retention deletes by age; metrics count by domain and status.
    await q.query(`CREATE INDEX documents_crawled_at ON example_crawl.documents (crawled_at)`);
    await q.query(`CREATE INDEX documents_domain_status ON example_crawl.documents (domain, status)`);
    await q.query(`CREATE TABLE example_crawl.domains (domain text PRIMARY KEY, priority int NOT NULL CHECK (priority BETWEEN 0 AND 2097152))`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA example_crawl CASCADE`);
  }
}

export const crawlEntities = [DocumentEntity, DomainEntity];
export const crawlMigrations = [CreateCrawlTables1765800200000];
export const CRAWL_MIGRATIONS_TABLE = 'example_crawl_migrations';
