import { isTransientError } from './retry';

/**
 * Group commit without added latency: a request made while no batch is in
 * flight goes at once; requests made while one is in flight wait for it and
 * then go together, up to `max` per batch. Each caller gets the result under
 * its own key (undefined when the batch had none for it).
 *
 * A batch that fails with an error that is not transient is retried item by
 * item before anyone is told, so one bad item fails only its own caller. A
 * transient error (Postgres or the network away, which `run` has already
 * retried) fails the whole batch at once.
 */
export class Batcher<T, R> {
  private waiting: Array<{ item: T; resolve: (value: R | undefined) => void; reject: (error: unknown) => void }> = [];
  private inFlight = false;

  constructor(
    private readonly run: (items: T[]) => Promise<Map<string, R>>,
    private readonly keyOf: (item: T) => string,
    private readonly max = 500,
  ) {}

  add(item: T): Promise<R | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.inFlight) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.inFlight = true;
    while (this.waiting.length) {
      const batch = this.waiting.splice(0, this.max);
      try {
        const results = await this.run(batch.map((b) => b.item));
        for (const b of batch) b.resolve(results.get(this.keyOf(b.item)));
      } catch (error) {
        if (batch.length === 1 || isTransientError(error)) {
          for (const b of batch) b.reject(error);
          continue;
        }
        for (const b of batch) {
          try {
            b.resolve((await this.run([b.item])).get(this.keyOf(b.item)));
          } catch (itemError) {
            b.reject(itemError);
          }
        }
      }
    }
    this.inFlight = false;
  }
}
