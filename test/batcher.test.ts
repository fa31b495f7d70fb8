import { Batcher } from '../src/infra/batcher';

describe('Batcher (group commit)', () => {
  it('sends a lone request at once and batches those that arrive while one is in flight', async () => {
    const calls: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const batcher = new Batcher<number, number>(async (items) => {
      calls.push(items);
      if (calls.length === 1) await gate;
      return new Map(items.map((i) => [String(i), i * 10]));
    }, String);
    const first = batcher.add(1);
    const rest = [2, 3, 4].map((i) => batcher.add(i));
    expect(calls).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...rest])).toEqual([10, 20, 30, 40]);
    expect(calls).toEqual([[1], [2, 3, 4]]);
  });

  it('fails only the caller whose item breaks a batch', async () => {
    let busy: Promise<void> | undefined;
    const batcher = new Batcher<string, string>(async (items) => {
      await busy;
      if (items.includes('bad')) throw new Error('bad item');
      return new Map(items.map((i) => [i, i.toUpperCase()]));
    }, (i) => i);
    let release!: () => void;
    busy = new Promise((r) => { release = r; });
    const head = batcher.add('head');
    const results = ['a', 'bad', 'b'].map((i) => batcher.add(i).then((v) => v, (e: Error) => e.message));
    busy = undefined;
    release();
    expect(await head).toBe('HEAD');
    expect(await Promise.all(results)).toEqual(['A', 'bad item', 'B']);
  });

  it('fails the whole batch at once on a transient error (no item-by-item retries while Postgres is away)', async () => {
    const calls: string[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const batcher = new Batcher<string, string>(async (items) => {
      calls.push(items);
      if (calls.length === 1) {
        await gate;
        return new Map([['head', 'HEAD']]);
      }
      throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    }, (i) => i);
    const head = batcher.add('head');
    const rest = ['a', 'b', 'c'].map((i) => batcher.add(i).then(() => 'resolved', (e: Error) => e.message));
    release();
    expect(await head).toBe('HEAD');
    expect(await Promise.all(rest)).toEqual(['connect ECONNREFUSED', 'connect ECONNREFUSED', 'connect ECONNREFUSED']);
    expect(calls).toEqual([['head'], ['a', 'b', 'c']]);
  });
});
