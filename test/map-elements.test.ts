import { ApiKeyStore } from '../src/auth/api-keys';
import { DroverApiError, DroverClient } from '../src/client/client';
import { DroverError, NotAMapStepError } from '../src/errors';
import { startServer, type DroverServer } from '../src/http/server';
import type { WorkflowDefinition } from '../src/types';
import type { MapElementView } from '../src/waits/map-elements';
import { describeEachBackend } from './helpers/env';
import { createEngine, type EngineHarness } from './helpers/engine';
import { http } from './helpers/server-process';

/** How many elements the map has: more than two default pages. */
const N = 230;
/** The elements that fail for good, with code `bad_item`. */
const FAILING = [7, 57, 107, 157, 207];

class BadItemError extends DroverError {
  constructor(item: number) {
    super('bad_item', `item ${item} is bad`, { retryable: false });
  }
}

const fan: WorkflowDefinition = {
  name: 'fan',
  steps: [
    { name: 'seed', processor: 'seed' },
    { name: 'each', dependsOn: ['seed'], map: { over: 'seed.items' }, processor: 'double', attempts: 1 },
  ],
};

describeEachBackend('map elements', (backend) => {
  jest.setTimeout(60_000);
  let engine: EngineHarness;
  let server: DroverServer;
  let key: string;
  let acmeKey: string;
  let runId: string;
  const api = (path: string, as = key, method = 'GET') => http(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${as}` } });

  beforeAll(async () => {
    engine = await createEngine(backend);
    await engine.startWorker({
      concurrency: 20,
      workflows: [fan],
      processors: {
        seed: async () => ({ items: Array.from({ length: N }, (_, i) => i) }),
        double: async (ctx: any) => {
          if (FAILING.includes(ctx.item)) throw new BadItemError(ctx.item);
          return { doubled: ctx.item * 2 };
        },
      },
    });
    const keys = new ApiKeyStore(engine.sql);
    key = (await keys.create('elements', { scope: 'read' })).key;
    acmeKey = (await keys.create('acme', { scope: 'read', workspaces: ['acme'] })).key;
    server = await startServer({ drover: engine.drover, port: 0 });
    const run = await engine.drover.waitForRun((await engine.drover.createRun({ workflow: 'fan' })).id, { timeoutMs: 50_000 });
    expect(run.status).toBe('failed');
    expect(run.steps.map((s) => s.name)).toEqual(['seed', 'each']); // the run's steps count the elements, they do not list them
    expect(run.steps[1].map).toMatchObject({ total: N, failed: FAILING.length, succeeded: N - FAILING.length });
    runId = run.id;
  });
  afterAll(async () => {
    await server?.close();
    await engine?.close();
  });

  it('pages over every element by index over HTTP, 100 by default', async () => {
    const seen: MapElementView[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api(`/api/runs/${runId}/steps/each/elements${cursor ? `?cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(100);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen.map((e) => e.index)).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(seen[3]).toEqual({
      index: 3, name: 'each[3]', status: 'succeeded', attempts: 1,
      startedAt: expect.any(String), finishedAt: expect.any(String), output: { doubled: 6 }, error: null,
    });
    expect(new Date(seen[3].finishedAt!).toISOString()).toBe(seen[3].finishedAt);
    expect(seen[7]).toMatchObject({ name: 'each[7]', status: 'failed', output: null, error: { code: 'bad_item', message: 'item 7 is bad' } });
    // One page of 1000 holds them all, with no cursor after it.
    const all = await api(`/api/runs/${runId}/steps/each/elements?limit=1000`);
    expect([all.body.items.length, all.body.nextCursor]).toEqual([N, null]);
  });

  it('filters by status, keeping the keyset paging', async () => {
    const failed = await api(`/api/runs/${runId}/steps/each/elements?status=failed&limit=2`);
    expect(failed.body.items.map((e: MapElementView) => e.index)).toEqual([7, 57]);
    expect(failed.body.nextCursor).toBe('57');
    const rest = await api(`/api/runs/${runId}/steps/each/elements?status=failed&limit=2&cursor=57`);
    expect(rest.body.items.map((e: MapElementView) => e.index)).toEqual([107, 157]);
    const last = await api(`/api/runs/${runId}/steps/each/elements?status=failed&limit=2&cursor=157`);
    expect([last.body.items.map((e: MapElementView) => e.index), last.body.nextCursor]).toEqual([[207], null]);
    const both = await api(`/api/runs/${runId}/steps/each/elements?status=failed,succeeded&limit=1000`);
    expect(both.body.items).toHaveLength(N);
    const none = await api(`/api/runs/${runId}/steps/each/elements?status=running`);
    expect(none.body).toEqual({ items: [], nextCursor: null });
  });

  it('answers 400 for bad paging, 404 for an unknown run or step, 422 for a step that is not a map step, 405 for POST', async () => {
    const base = `/api/runs/${runId}/steps/each/elements`;
    const bad: Array<[string, RegExp]> = [
      ['?limit=0', /^limit must be a whole number from 1 to 1000$/],
      ['?limit=1001', /^limit must be a whole number from 1 to 1000$/],
      ['?limit=ten', /^limit must be a whole number from 1 to 1000$/],
      ['?cursor=abc', /^cursor must be the nextCursor of a previous page$/],
      ['?cursor=-1', /^cursor must be the nextCursor of a previous page$/],
      ['?status=done', /^status must be one of pending, queued, running, succeeded, failed, cancelled, skipped/],
      ['?status=failed&status=succeeded', /^status must be one of/],
      ['?offset=10', /^unknown query parameter "offset" \(allowed: status, limit, cursor\)$/],
    ];
    for (const [qs, message] of bad) {
      const res = await api(`${base}${qs}`);
      expect([qs, res.status, res.body.error.code]).toEqual([qs, 400, 'invalid_request']);
      expect(res.body.error.message).toMatch(message);
    }
    const noRun = await api('/api/runs/00000000-0000-4000-8000-000000000000/steps/each/elements');
    expect([noRun.status, noRun.body.error]).toEqual([404, { code: 'not_found', message: 'run not found' }]);
    expect((await api('/api/runs/not-a-uuid/steps/each/elements')).status).toBe(404);
    const noStep = await api(`/api/runs/${runId}/steps/nope/elements`);
    expect([noStep.status, noStep.body.error.code, noStep.body.error.message]).toEqual([404, 'not_found', `step "nope" of run ${runId} not found`]);
    const seed = await api(`/api/runs/${runId}/steps/seed/elements`);
    expect([seed.status, seed.body.error.code]).toEqual([422, 'not_a_map_step']);
    expect(seed.body.error.message).toBe('step "seed" is not a map step (its processor is seed): only a map step has elements');
    const element = await api(`/api/runs/${runId}/steps/${encodeURIComponent('each[3]')}/elements`);
    expect([element.status, element.body.error.message]).toEqual([422, 'step "each[3]" is an element of a map step, not a map step']);
    const posted = await api(base, key, 'POST');
    expect(posted.status).toBe(405);
  });

  it('keeps a workspace-limited key to its workspaces\' runs: another\'s answers as a missing one', async () => {
    const missing = await api('/api/runs/00000000-0000-4000-8000-000000000000/steps/each/elements', acmeKey);
    const theirs = await api(`/api/runs/${runId}/steps/each/elements`, acmeKey);
    expect([theirs.status, theirs.body]).toEqual([404, missing.body]);
    await expect(engine.drover.listMapElements(runId, 'each', {}, { workspaces: ['acme'] })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('Drover.listMapElements and DroverClient.listMapElements give the same pages', async () => {
    const client = new DroverClient({ baseUrl: server.url, apiKey: key });
    const first = await client.listMapElements(runId, 'each', { limit: 50 });
    expect(first.items.map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const second = await client.listMapElements(runId, 'each', { limit: 50, cursor: first.nextCursor! });
    expect(second.items[0].index).toBe(50);
    expect(await engine.drover.listMapElements(runId, 'each', { limit: 50, cursor: first.nextCursor! })).toEqual(second);
    const failed = await client.listMapElements(runId, 'each', { status: 'failed', limit: 1000 });
    expect(failed.items.map((e) => [e.index, (e.error as { code: string }).code])).toEqual(FAILING.map((i) => [i, 'bad_item']));
    const refused = await client.listMapElements(runId, 'seed').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DroverApiError);
    expect(refused).toMatchObject({ status: 422, code: 'not_a_map_step' });
    await expect(engine.drover.listMapElements(runId, 'seed')).rejects.toBeInstanceOf(NotAMapStepError);
    await expect(client.listMapElements(runId, 'each', { limit: 0 })).rejects.toMatchObject({ status: 400, code: 'invalid_request' });
  });
});
