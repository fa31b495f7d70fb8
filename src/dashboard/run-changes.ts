import type { Client } from 'pg';
import type { RunsChanged } from '../audit/audit';
import { RUN_CHANGES_CHANNEL } from '../migrations/1765200000000-dashboard-notify';
import { silentLogger, type Logger } from '../telemetry/logger';

/** What subscribers hear: the ids of the runs that changed, or `all` when too many changed to list. */
export type RunChange = { runIds: string[] } | { all: true };

/** Options of the run change feed. */
export interface RunChangeFeedOptions {
  /** Makes a new, unconnected pg client (the feed connects it and owns it). */
  createClient: () => Client;
  /** Reads the runs with events after an event id (`runsChangedSince` on the pool). */
  readChanges: (afterId: string | null) => Promise<RunsChanged>;
  /** Least time between two reads of what changed, however often the doorbell rings. Default 50 ms. */
  minReadGapMs?: number;
  /** First reconnect delay after the connection drops; doubles up to `maxReconnectMs`. Default 250 ms. */
  reconnectMs?: number;
  /** Longest reconnect delay. Default 5 000 ms. */
  maxReconnectMs?: number;
  /** Default silent. */
  logger?: Logger;
}

/**
 * One `LISTEN` connection per server process, fanned out to every subscriber
 * (each browser's server-sent event stream). The statement-level trigger on
 * `drover.audit_events` rings a payload-free doorbell; on a ring the feed
 * reads which runs got events since the last read (one primary-key range
 * query per process, at most every `minReadGapMs`) and tells subscribers. So
 * the hot path pays only the doorbell, and a run's change is read once
 * however many browsers watch. When the connection drops (a Postgres restart)
 * it reconnects with backoff and then tells subscribers `all`, since changes
 * made meanwhile were not heard.
 */
export class RunChangeFeed {
  private readonly subscribers = new Set<(change: RunChange) => void>();
  private readonly closers = new Map<(change: RunChange) => void, () => void>();
  private client?: Client;
  private closed = false;
  private connecting = false;
  private timer?: NodeJS.Timeout;
  private delayMs: number;
  private everConnected = false;
  private readonly logger: Logger;
  /** The highest event id read; null: no baseline (nobody listened). */
  private lastId: string | null = null;
  /** Event ids of the last read, which the next (overlapping) read skips. */
  private seen = new Set<string>();
  private reading = false;
  private readAgain = false;
  private readTimer?: NodeJS.Timeout;
  private lastReadAt = 0;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: RunChangeFeedOptions) {
    this.delayMs = options.reconnectMs ?? 250;
    this.logger = options.logger ?? silentLogger;
  }

  /** How many subscribers listen now. */
  get size(): number {
    return this.subscribers.size;
  }

  /** Whether the LISTEN connection is up. */
  get listening(): boolean {
    return Boolean(this.client);
  }

  /** Whether it listens and has read where the audit trail ends, so the next change will be told. */
  get ready(): boolean {
    return Boolean(this.client) && this.lastId !== null;
  }

  /** Resolves once `ready` (or after `timeoutMs`, default 2 000 ms, whichever comes first). */
  whenReady(timeoutMs = 2000): Promise<void> {
    if (this.ready || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      const waiters = this.waiters;
      function done() {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
      waiters.add(done);
    });
  }

  /**
   * Subscribes; the connection opens with the first subscriber. `onClose`
   * runs when the feed closes (a server shutting down ends its event streams).
   * Returns the unsubscribe function.
   */
  subscribe(listener: (change: RunChange) => void, onClose?: () => void): () => void {
    // A copy per subscription, so the same function may subscribe twice.
    const own = (change: RunChange) => listener(change);
    this.subscribers.add(own);
    if (onClose) this.closers.set(own, onClose);
    this.ensureConnected();
    // The first subscriber after a quiet spell takes a baseline now, so the next ring has something to read after.
    if (this.client && this.lastId === null) this.requestRead();
    return () => {
      this.subscribers.delete(own);
      this.closers.delete(own);
    };
  }

  /** Closes the connection, ends every subscription (their `onClose`) and forgets them. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.readTimer);
    const closers = [...this.closers.values()];
    this.subscribers.clear();
    this.closers.clear();
    for (const end of closers) end();
    for (const done of [...this.waiters]) done();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private ensureConnected(): void {
    if (this.closed || this.client || this.connecting || this.timer) return;
    this.connecting = true;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const client = this.options.createClient();
    let dropped = false;
    const onDrop = (error?: Error) => {
      if (dropped) return;
      dropped = true;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => undefined);
      if (this.closed) return;
      this.logger.warn({ reason: error?.message }, 'the dashboard lost its LISTEN connection; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', onDrop);
    client.on('end', () => onDrop());
    client.on('notification', (message) => {
      if (message.channel === RUN_CHANGES_CHANNEL) this.requestRead();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${RUN_CHANGES_CHANNEL}`);
    } catch (error) {
      this.connecting = false;
      onDrop(error as Error);
      return;
    }
    this.connecting = false;
    if (this.closed || dropped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.delayMs = this.options.reconnectMs ?? 250;
    // After a reconnect, what changed while we were away was not heard: everyone refreshes, and a new baseline is taken.
    this.lastId = null;
    this.seen.clear();
    if (this.everConnected) this.publish({ all: true });
    this.everConnected = true;
    this.requestRead();
  }

  /** Reads what changed soon, at most one read at a time and one per `minReadGapMs`. */
  private requestRead(): void {
    if (this.closed) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    if (this.readTimer) return;
    const wait = Math.max(0, this.lastReadAt + (this.options.minReadGapMs ?? 50) - Date.now());
    this.readTimer = setTimeout(() => {
      this.readTimer = undefined;
      void this.read();
    }, wait);
    this.readTimer.unref();
  }

  private async read(): Promise<void> {
    if (this.closed) return;
    if (this.subscribers.size === 0) {
      // Nobody listens: drop the baseline rather than read; the next subscriber takes a new one.
      this.lastId = null;
      this.seen.clear();
      return;
    }
    this.reading = true;
    this.lastReadAt = Date.now();
    try {
      const baseline = this.lastId === null;
      const changes = await this.options.readChanges(this.lastId);
      this.lastId = changes.lastId;
      if (changes.overflow) {
        this.seen.clear();
        this.publish({ all: true });
      } else if (baseline) {
        // The events up to the baseline are not changes: the next read's overlap must not tell them.
        this.seen = new Set(changes.events.map((e) => e.id));
        for (const done of [...this.waiters]) done();
      } else {
        const fresh = changes.events.filter((e) => !this.seen.has(e.id));
        this.seen = new Set(changes.events.map((e) => e.id));
        if (fresh.length) this.publish({ runIds: [...new Set(fresh.map((e) => e.runId))] });
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'could not read which runs changed; every page refreshes');
      this.publish({ all: true });
    } finally {
      this.reading = false;
      if (this.readAgain) {
        this.readAgain = false;
        this.requestRead();
      }
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.timer) return;
    const delay = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.options.maxReconnectMs ?? 5000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ensureConnected();
    }, delay);
    this.timer.unref();
  }

  private publish(change: RunChange): void {
    for (const listener of this.subscribers) {
      try {
        listener(change);
      } catch (error) {
        this.logger.warn({ err: error }, 'a run change subscriber threw');
      }
    }
  }
}
