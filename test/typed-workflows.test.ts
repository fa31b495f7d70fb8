import { z } from 'zod';
import { InvalidInputError } from '../src/errors';
import { RunFailedError } from '../src/client/result';
import { workflow } from '../src/workflows/builder';
import { resolveModule } from '../src/workflows/definitions';
import { createEngine, type EngineHarness } from './helpers/engine';
import { describeEachBackend } from './helpers/env';

/** A typed diamond: parents, params, a schema with a default, and an explicit output. */
function crawlWorkflow() {
  const wf = workflow('crawl', { input: z.object({ url: z.string(), depth: z.number().int().default(2) }) });
  const fetch = wf.step('fetch', { attempts: 2 }, async ({ input }) => ({ html: `<a>${input.url}</a>`, depth: input.depth }));
  const count = wf.step('count', { parents: [fetch], params: { weight: 10 } }, ({ parents, params }) => ({ n: parents.fetch.html.length * params.weight }));
  const title = wf.step('title', { parents: [fetch], queue: 'default' }, ({ parents }) => ({ title: parents.fetch.html.slice(3, -4) }));
  const report = wf.step('report', { parents: [count, title] }, ({ parents, input, step }) => ({
    summary: `${parents.title.title}:${parents.count.n}:${input.depth}`, step: step.name,
  }));
  wf.step('audit', { parents: [report] }, () => undefined);
  return wf.output(report);
}

describe('typed workflows compile to plain definitions', () => {
  it('derives processor names and keeps params and the output in the definition', () => {
    const crawl = crawlWorkflow();
    const definition = crawl.toDefinition();
    expect(definition.output).toBe('report');
    expect(definition.steps.map((s) => [s.name, s.processor, s.dependsOn ?? []])).toEqual([
      ['fetch', 'crawl/fetch', []], ['count', 'crawl/count', ['fetch']], ['title', 'crawl/title', ['fetch']],
      ['report', 'crawl/report', ['count', 'title']], ['audit', 'crawl/audit', ['report']],
    ]);
    expect(definition.steps[1].params).toEqual({ weight: 10 });
    const { workflows, processors } = resolveModule({ workflows: [crawl] });
    expect(Object.keys(processors).sort()).toEqual(['crawl/audit', 'crawl/count', 'crawl/fetch', 'crawl/report', 'crawl/title']);
    expect(workflows[0].steps[1].params).toEqual({ weight: 10 });
    // Params are part of the version: changing them makes a new one.
    const other = workflow('crawl');
    other.step('fetch', { params: { weight: 11 } }, () => null);
    const base = workflow('crawl');
    base.step('fetch', { params: { weight: 10 } }, () => null);
    expect(resolveModule({ workflows: [other] }).workflows[0].version).not.toBe(resolveModule({ workflows: [base] }).workflows[0].version);
  });

  it('refuses, in plain JavaScript, what the compiler refuses in TypeScript', () => {
    const wf = workflow('w');
    const a = wf.step('a', {}, () => null);
    const foreign = workflow('v').step('x', {}, () => null);
    expect(() => wf.step('a', {}, () => null)).toThrow('workflow "w": duplicate step name "a"');
    expect(() => wf.step('b', { parents: ['a' as never] }, () => null)).toThrow('parents must be step references returned by step()');
    expect(() => wf.step('b', { parents: [foreign as never] }, () => null)).toThrow('parent "x" is not a step of this workflow');
    expect(() => wf.step('b', { params: { f: (() => 1) as never } }, () => null)).toThrow('workflow "w", step "b": params.f is a function');
    expect(() => workflow('Bad Name')).toThrow('the name must match');
    expect(() => workflow('w', { input: { type: 'object' } as never })).toThrow('input must be a zod schema');
    expect(() => workflow('empty').toDefinition()).toThrow('a workflow needs at least one step');
    wf.step('b', { parents: [a] }, () => null);
  });
});

describeEachBackend('typed workflows', (backend) => {
  let engine: EngineHarness;
  beforeEach(async () => { engine = await createEngine(backend); });
  afterEach(async () => { await engine.close(); });

  it('runs with typed parents, params and input, and result() resolves the explicit output', async () => {
    const crawl = crawlWorkflow();
    await engine.startWorker({ workflows: [crawl] });
    const handle = await engine.drover.start(crawl, { url: 'x.org' });
    expect(handle.run.status).toBe('pending');
    const output = await handle.result({ timeoutMs: 20_000 });
    expect(output).toEqual({ summary: 'x.org:120:2', step: 'report' });
    const run = await engine.drover.getRun(handle.id);
    expect(run.output).toEqual(output);
    expect(run.steps.find((s) => s.name === 'audit')?.output).toBeNull();
  });

  it('by default resolves the sink outputs by step name; failures and cancels reject', async () => {
    const sinks = workflow('sinks');
    const a = sinks.step('a', {}, ({ input }) => ({ got: input.n ?? null }));
    sinks.step('b', { parents: [a] }, ({ parents }) => ({ twice: [parents.a.got, parents.a.got] }));
    sinks.step('c', {}, () => 'alone');
    const broken = workflow('broken');
    broken.step('boom', { attempts: 1 }, () => { throw new Error('kaput'); });
    const slow = workflow('slow');
    slow.step('wait', {}, ({ signal }) => new Promise<null>((resolve) => signal.addEventListener('abort', () => resolve(null))));
    await engine.startWorker({ workflows: [sinks, broken, slow] });

    expect(await (await engine.drover.start(sinks, { n: 3 })).result({ timeoutMs: 20_000 })).toEqual({ b: { twice: [3, 3] }, c: 'alone' });

    const failed = await engine.drover.start(broken);
    const error = await failed.result({ timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunFailedError);
    expect((error as RunFailedError).code).toBe('run_failed');
    expect((error as RunFailedError).message).toBe(`run ${failed.id} of workflow "broken" failed (step "boom": kaput)`);

    const cancelled = await engine.drover.start('slow');
    await engine.drover.cancelRun(cancelled.id);
    const why = await cancelled.result({ timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect((why as RunFailedError).code).toBe('run_cancelled');
    expect((why as RunFailedError).message).toBe(`run ${cancelled.id} of workflow "slow" was cancelled`);
  });

  it('checks the input against the schema before creating the run, and again in the worker', async () => {
    const crawl = crawlWorkflow();
    await engine.startWorker({ workflows: [crawl] });
    const error = await engine.drover.start(crawl, { url: 7 } as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as InvalidInputError).message).toBe('the input does not match the input schema of workflow "crawl": input.url: Invalid input: expected string, received number');
    expect((await engine.drover.listRuns()).items).toHaveLength(0);
    // The registry's JSON Schema refuses it too (createRun by name, the HTTP API).
    expect((await engine.drover.createRun({ workflow: 'crawl', input: { depth: 1 } }).catch((e: InvalidInputError) => e.details)))
      .toEqual({ path: 'input.url', message: 'is required' });
  });

  it('a refinement JSON Schema cannot express is checked by start() and, for runs created by name, by the step', async () => {
    const even = workflow('even', { input: z.object({ n: z.number().refine((n) => n % 2 === 0, 'must be even') }) });
    even.step('half', {}, ({ input }) => ({ half: input.n / 2 }));
    await engine.startWorker({ workflows: [even] });
    expect((await engine.drover.start(even, { n: 3 }).catch((e: InvalidInputError) => e.message)))
      .toBe('the input does not match the input schema of workflow "even": input.n: must be even');
    expect(await (await engine.drover.start(even, { n: 4 })).result({ timeoutMs: 20_000 })).toEqual({ half: { half: 2 } });
    const run = await engine.drover.createRun({ workflow: 'even', input: { n: 3 } });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('failed');
    const half = done.steps.find((s) => s.name === 'half')!;
    expect(half.attempts).toBe(1);
    expect((half.error as { message: string }).message).toBe('the run input does not match the input schema of workflow "even": input.n: must be even');
  });
});
