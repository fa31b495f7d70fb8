/**
 * Type tests of the typed API (CONTRACT §1b), compiled by `tsc -p .` in
 * `npm test` and never run. Each `@ts-expect-error` line must fail to compile
 * (tsc reports an unused directive otherwise); every other line must compile.
 */
import { z } from 'zod';
import { workflow, type Drover, type StepRef } from '../../src';
import { DroverClient } from '../../src/client';

declare const drover: Drover;
declare const client: DroverClient;

const wf = workflow('crawl', { input: z.object({ url: z.string().url(), depth: z.number().int().default(1) }) });

const page = wf.step('fetch', { attempts: 3 }, async ({ input, signal }) => {
  const url: string = input.url;
  const depth: number = input.depth; // the schema's default makes it present in ctx.input
  void signal;
  return { status: 200, html: `<a href="${url}">${depth}</a>` };
});

const parse = wf.step('parse', { parents: [page], queue: 'cpu', params: { selector: 'a' } }, async ({ parents, params }) => {
  const length: number = parents.fetch.html.length;
  const selector: string = params.selector;
  return { links: length, selector };
});

// @ts-expect-error a misspelt field of a parent's output
wf.step('typo', { parents: [page] }, async ({ parents }) => ({ n: parents.fetch.htm.length }));

// @ts-expect-error a parent the step did not list
wf.step('unlisted', { parents: [page] }, async ({ parents }) => ({ n: parents.parse.links }));

// @ts-expect-error parents are step references, not names
wf.step('by-name', { parents: ['fetch'] }, async () => ({}));

const other = workflow('other');
const foreign = other.step('x', {}, () => ({ y: 1 }));
// @ts-expect-error a step of another workflow is an unknown parent here
wf.step('foreign', { parents: [foreign] }, async () => ({}));

// @ts-expect-error a function is not JSON
wf.step('fn-output', {}, async () => ({ callback: () => 1 }));

// @ts-expect-error a Date is not JSON (return its ISO string)
wf.step('date-output', {}, async () => ({ at: new Date() }));

// @ts-expect-error params must be JSON
wf.step('bad-params', { params: { when: new Date() } }, async () => null);

// @ts-expect-error params the step does not have
wf.step('no-params', {}, async ({ params }) => ({ n: params.missing }));

// A step that returns nothing has output null; one without a schema has JSON input.
const done = wf.step('notify', { parents: [parse] }, async ({ parents }) => { void parents.parse.links; });
const nothing: StepRef<'crawl', 'notify', null> = done;
void nothing;
const loose = other.step('loose', {}, ({ input }) => ({ seen: input.anything ?? null }));
void loose;

export const crawl = wf.output(parse);

async function producers(): Promise<void> {
  const handle = await drover.start(crawl, { url: 'https://example.com' });
  const out = await handle.result();
  const links: number = out.links;
  // @ts-expect-error the output has no such field
  void out.linkz;
  void links;

  // @ts-expect-error wrong input type
  await drover.start(crawl, { url: 42 });
  // @ts-expect-error a required input field is missing
  await drover.start(crawl, {});

  // The default output: the sink steps' outputs by step name.
  const sinks = await (await drover.start(other)).result();
  void sinks.loose;

  // Over HTTP, by type only.
  const remote = await client.start<typeof crawl>('crawl', { url: 'https://example.com', depth: 2 });
  const selector: string = (await remote.result()).selector;
  void selector;
  // @ts-expect-error the name must be the workflow's
  await client.start<typeof crawl>('crwal', { url: 'https://example.com' });
  // @ts-expect-error wrong input type over HTTP too
  await client.start<typeof crawl>('crawl', { url: 1 });
  const later: number = (await client.result<typeof crawl>(handle.id)).links;
  void later;
  // Untyped use keeps working.
  const any = await client.start('whatever', { free: 'form' });
  void any.id;
}
void producers;

// Join policies (CONTRACT §7) type ctx.parents by what the step sees.
const settled = wf.step('report', { parents: [page, parse], join: 'all_settled' }, async ({ parents }) => {
  const status: 'succeeded' | 'failed' | 'cancelled' | 'skipped' = parents.fetch.status;
  const links: number | undefined = parents.parse.output?.links;
  const why: string | undefined = parents.parse.error?.message;
  // @ts-expect-error an all_settled parent's output may be null
  const direct: number = parents.parse.output.links;
  return { status, links: links ?? null, why: why ?? null, direct };
});
void settled;
wf.step('first', { parents: [page, parse], join: 'any_succeeded' }, async ({ parents }) => {
  const links: number | undefined = parents.parse?.links;
  // @ts-expect-error an any_succeeded parent may not have succeeded (its output is null)
  const html: string = parents.fetch.html;
  return { links: links ?? null, html };
});
// @ts-expect-error an unknown join policy
wf.step('bad-join', { parents: [page], join: 'some_succeeded' }, async () => null);
