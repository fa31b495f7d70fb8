import { z } from 'zod';
import { resolveWorkflow } from '../src/workflows/definitions';
import { workflow } from '../src/workflows/builder';
import { flowOptionsOf, keyValueOf } from '../src/flow/flow-spec';

const base = { name: 'wf', steps: [{ name: 'a', processor: 'p' }] };
const message = (definition: unknown) => {
  try {
    resolveWorkflow(definition);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('accepted');
};

describe('flow control in definitions', () => {
  it('rejects bad concurrency and rateLimit options with a message naming the workflow, step and field', () => {
    expect(message({ ...base, concurrency: { key: 'input.tenant', limit: 0 } })).toBe('workflow "wf": concurrency.limit: must be a whole number from 1 to 10000');
    expect(message({ ...base, concurrency: { key: 'input.tenant', limit: 2.5 } })).toBe('workflow "wf": concurrency.limit: must be a whole number from 1 to 10000');
    expect(message({ ...base, concurrency: { key: 'input.', limit: 2 } })).toBe('workflow "wf": concurrency.key: input.<path> needs a path of dotted names with no empty part, like input.tenant');
    expect(message({ ...base, concurrency: { key: 'input', limit: 2 } })).toBe('workflow "wf": concurrency.key: "input" names no field: use input.<path>, like input.tenant');
    expect(message({ ...base, concurrency: { key: '', limit: 2 } })).toBe('workflow "wf": concurrency.key: must not be empty');
    expect(message({ ...base, concurrency: { key: 7, limit: 2 } })).toBe('workflow "wf": concurrency.key: must be a string: input.<path> or a constant');
    expect(message({ ...base, concurrency: { key: 'k', limit: 2, strategy: 'drop' } })).toBe('workflow "wf": concurrency.strategy: must be "queue", "cancel_newest" or "cancel_in_progress"');
    expect(message({ ...base, concurrency: 'tenant' })).toBe('workflow "wf": concurrency: must be an object {key, limit, strategy?}');
    expect(message({ ...base, concurrency: { key: 'k', limit: 1, burst: 2 } })).toBe('workflow "wf": concurrency: unknown option "burst": must be an object {key, limit, strategy?}');
    expect(message({ name: 'wf', steps: [{ name: 'a', processor: 'p', concurrency: { key: 'k', limit: 2, strategy: 'queue' } }] }))
      .toBe('workflow "wf", step "a": concurrency: unknown option "strategy": must be an object {key, limit} (strategy is a workflow option: a step over its limit waits)');
    expect(message({ name: 'wf', steps: [{ name: 'a', processor: 'p', rateLimit: { key: 'k', limit: 10 } }] }))
      .toBe('workflow "wf", step "a": rateLimit.periodMs: must be a whole number of milliseconds from 1 to 86400000 (a day)');
    expect(message({ ...base, rateLimit: { key: 'k', limit: 0, periodMs: 1000 } })).toBe('workflow "wf": rateLimit.limit: must be a whole number from 1 to 100000');
    expect(message({ ...base, rateLimit: { key: 'k', limit: 1, periodMs: 86_400_001 } })).toBe('workflow "wf": rateLimit.periodMs: must be a whole number of milliseconds from 1 to 86400000 (a day)');
  });

  it('keeps the options in the resolved definition, and leaves the version of a definition without them unchanged', () => {
    const plain = resolveWorkflow(base);
    const limited = resolveWorkflow({ ...base, concurrency: { key: 'input.tenant', limit: 2 }, steps: [{ name: 'a', processor: 'p', rateLimit: { key: 'api', limit: 5, periodMs: 1000 } }] });
    expect(plain).not.toHaveProperty('concurrency');
    expect(plain.steps[0]).not.toHaveProperty('rateLimit');
    expect(limited.concurrency).toEqual({ key: 'input.tenant', limit: 2 });
    expect(limited.steps[0].rateLimit).toEqual({ key: 'api', limit: 5, periodMs: 1000 });
    expect(limited.version).not.toBe(plain.version);
    expect(resolveWorkflow(base).version).toBe(plain.version);
  });

  it('the typed builder carries them into the plain definition', () => {
    const wf = workflow('typed-flow', { input: z.object({ tenant: z.string() }), concurrency: { key: 'input.tenant', limit: 3, strategy: 'cancel_newest' }, rateLimit: { key: 'input.tenant', limit: 9, periodMs: 60_000 } });
    wf.step('call', { concurrency: { key: 'openai', limit: 4 }, rateLimit: { key: 'openai', limit: 50, periodMs: 1000 } }, async () => null);
    const definition = wf.toDefinition();
    expect(definition).toMatchObject({ concurrency: { key: 'input.tenant', limit: 3, strategy: 'cancel_newest' }, rateLimit: { key: 'input.tenant', limit: 9, periodMs: 60_000 } });
    expect(definition.steps[0]).toMatchObject({ concurrency: { key: 'openai', limit: 4 }, rateLimit: { key: 'openai', limit: 50, periodMs: 1000 } });
    expect(() => resolveWorkflow(definition)).not.toThrow();
  });

  it('resolves key values from the run input: a path is labelled with its value, a constant is itself', () => {
    expect(keyValueOf('input.tenant', { tenant: 'a' })).toBe('tenant=a');
    expect(keyValueOf('input.org.id', { org: { id: 7 } })).toBe('org.id=7');
    expect(keyValueOf('input.missing', {})).toBe('missing=null');
    expect(keyValueOf('openai', { tenant: 'a' })).toBe('openai');
    const resolved = resolveWorkflow({ name: 'wf', concurrency: { key: 'input.tenant', limit: 2 }, rateLimit: { key: 'input.tenant', limit: 5, periodMs: 1000 },
      steps: [{ name: 'a', processor: 'p', concurrency: { key: 'input.region', limit: 1 } }, { name: 'b', processor: 'p', dependsOn: ['a'] }] });
    expect(flowOptionsOf(resolved, resolved.steps[0], { tenant: 'x', region: 'eu' })).toEqual({ flow: {
      run: { scope: 'run:wf', key: 'tenant=x', limit: 2, strategy: 'queue' },
      step: { scope: 'step:wf', key: 'region=eu', limit: 1 },
      runRate: { scope: 'run-rate:wf', key: 'tenant=x', limit: 5, periodMs: 1000 },
    } });
    // Run starts are counted on root steps only.
    expect(flowOptionsOf(resolved, resolved.steps[1], { tenant: 'x' })).toEqual({ flow: { run: { scope: 'run:wf', key: 'tenant=x', limit: 2, strategy: 'queue' } } });
    expect(flowOptionsOf(resolveWorkflow(base), resolveWorkflow(base).steps[0], {})).toEqual({});
  });
});
