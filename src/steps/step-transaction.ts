import type { PoolClient } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { Queryable } from '../db/sql';

/**
 * The Postgres transaction of one attempt's `ctx.transaction`: opened on the
 * first call, shared by the later ones, and ended by the executor — committed
 * together with the step's success (`commitWith`), or rolled back.
 */
export class StepTransaction {
  private runner?: QueryRunner;
  private opening?: Promise<QueryRunner>;
  private state: 'open' | 'committed' | 'rolled_back' = 'open';

  constructor(private readonly ds: DataSource) {}

  /** Runs `work` with the transaction's manager (opening the transaction first). */
  async run<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    if (this.state !== 'open') throw new Error(`the step's transaction is already ${this.state === 'committed' ? 'committed' : 'rolled back'}`);
    this.opening ??= this.open();
    const runner = await this.opening;
    return work(runner.manager);
  }

  /**
   * Runs `record` (the step's success) inside the transaction and commits
   * when it returns a value; rolls back when it returns undefined (the fence
   * failed) or throws.
   */
  async commitWith<T>(record: (q: Queryable) => Promise<T | undefined>): Promise<T | undefined> {
    const runner = await this.opening!;
    const client = (runner as unknown as { databaseConnection: PoolClient }).databaseConnection;
    const q: Queryable = { query: async (text, params) => (await client.query(text, params as unknown[])).rows };
    let outcome: T | undefined;
    try {
      outcome = await record(q);
    } catch (error) {
      await this.rollback();
      throw error;
    }
    if (outcome === undefined) {
      await this.rollback();
      return undefined;
    }
    this.state = 'committed';
    try {
      await runner.commitTransaction();
    } finally {
      await runner.release().catch(() => undefined);
    }
    return outcome;
  }

  /** Rolls back (once) and releases the connection; harmless after a commit. */
  async rollback(): Promise<void> {
    if (this.state !== 'open' || !this.opening) {
      if (this.state === 'open') this.state = 'rolled_back';
      return;
    }
    this.state = 'rolled_back';
    const runner = await this.opening.catch(() => undefined);
    if (!runner) return;
    await runner.rollbackTransaction().catch(() => undefined);
    await runner.release().catch(() => undefined);
  }

  private async open(): Promise<QueryRunner> {
    const runner = this.ds.createQueryRunner();
    try {
      await runner.connect();
      await runner.startTransaction();
    } catch (error) {
      await runner.release().catch(() => undefined);
      throw error;
    }
    this.runner = runner;
    return runner;
  }
}
