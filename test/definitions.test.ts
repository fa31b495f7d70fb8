import { defineProcessor, defineWorkflow, resolveModule, resolveWorkflow } from '../src/workflows/definitions';
import { DefinitionError } from '../src/errors';

const noop = async () => null;

function errorOf(fn: () => unknown): DefinitionError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DefinitionError);
    return error as DefinitionError;
  }
  throw new Error('expected a DefinitionError');
}

describe('workflow definitions', () => {
  it('resolves defaults and a stable version hash', () => {
    const wf = resolveWorkflow({ name: 'crawl', steps: [{ name: 'fetch', processor: 'p' }, { name: 'parse', processor: 'p', dependsOn: ['fetch'] }] });
    expect(wf.steps[0]).toEqual({
      name: 'fetch', processor: 'p', dependsOn: [], attempts: 3, backoff: { type: 'exponential', delayMs: 1000 },
      delayMs: 0, timeoutMs: null, queue: 'default', priority: 0,
    });
    expect(wf.failFast).toBe(false);
    expect(wf.version).toMatch(/^[0-9a-f]{16}$/);
    const again = resolveWorkflow({ steps: [{ processor: 'p', name: 'fetch' }, { dependsOn: ['fetch'], name: 'parse', processor: 'p' }], name: 'crawl' });
    expect(again.version).toBe(wf.version);
    expect(resolveWorkflow({ name: 'crawl', steps: [{ name: 'fetch', processor: 'q' }] }).version).not.toBe(wf.version);
  });

  it.each([
    [{ name: 'Bad Name', steps: [{ name: 'a', processor: 'p' }] }, 'workflow "Bad Name": name: must match'],
    [{ name: 'w', steps: [] }, 'workflow "w": steps: a workflow needs at least one step'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p' }, { name: 'a', processor: 'p' }] }, 'workflow "w": duplicate step name "a"'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', dependsOn: ['ghost'] }] }, 'workflow "w", step "a": dependsOn names unknown step "ghost"'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', dependsOn: ['a'] }] }, 'workflow "w", step "a": depends on itself'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', attempts: 0 }] }, 'workflow "w", step "a": attempts:'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', attempts: '3' }] }, 'workflow "w", step "a": attempts:'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', backoff: { type: 'linear', delayMs: 1 } }] }, 'workflow "w", step "a": backoff.type: backoff.type must be "fixed" or "exponential"'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', timeoutMs: -5 }] }, 'workflow "w", step "a": timeoutMs:'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', queue: 'has:colon' }] }, 'workflow "w", step "a": queue: must match'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', priority: 1.5 }] }, 'workflow "w", step "a": priority:'],
    [{ name: 'w', steps: [{ name: 'a', processor: 'p', dependOn: ['x'] }] }, 'workflow "w", step "a"'],
    [{ name: 'w', steps: [{ processor: 'p' }] }, 'workflow "w", step #1: name:'],
    [null, 'workflow'],
  ])('rejects %j', (definition, message) => {
    expect(errorOf(() => resolveWorkflow(definition)).message).toContain(message);
  });

  it('names the cycle in execution order', () => {
    const error = errorOf(() => resolveWorkflow({
      name: 'loop',
      steps: [
        { name: 'start', processor: 'p' },
        { name: 'a', processor: 'p', dependsOn: ['start', 'c'] },
        { name: 'b', processor: 'p', dependsOn: ['a'] },
        { name: 'c', processor: 'p', dependsOn: ['b'] },
      ],
    }));
    expect(error.message).toBe('workflow "loop": dependency cycle a → b → c → a');
  });

  // Listed last step first, so a depth-first search walks the whole chain from its first visit.
  const chain = (length: number) => Array.from({ length }, (_, k) => {
    const i = length - 1 - k;
    return { name: `s${i}`, processor: 'p', dependsOn: i ? [`s${i - 1}`] : [] };
  });

  it('validates a 10,000-step chain without overflowing the stack', () => {
    expect(resolveWorkflow({ name: 'chain', steps: chain(10_000) }).steps).toHaveLength(10_000);
  });

  it('names a cycle deep in a 10,000-step chain', () => {
    const steps = chain(10_000);
    // s5 also depends on s9999, closing a loop s5 → … → s9999 → s5 at the far end of the walk.
    steps.find((s) => s.name === 's5')!.dependsOn.push('s9999');
    const error = errorOf(() => resolveWorkflow({ name: 'long', steps }));
    const cycle = (error.details as { cycle: string[] }).cycle;
    expect(cycle).toHaveLength(9996);
    expect([...cycle.slice(0, 3), ...cycle.slice(-2)]).toEqual(['s9999', 's5', 's6', 's9998', 's9999']);
    expect(error.message.startsWith('workflow "long": dependency cycle s9999 → s5 → s6 → s7')).toBe(true);
  });

  it('checks processors of a module', () => {
    const wf = defineWorkflow({ name: 'w', steps: [{ name: 'a', processor: 'known' }, { name: 'b', processor: 'missing' }] });
    expect(errorOf(() => resolveModule({ workflows: [wf], processors: { known: defineProcessor(noop) } })).message)
      .toBe('workflow "w", step "b": unknown processor "missing"');
    expect(errorOf(() => resolveModule({ workflows: [], processors: { bad: 42 as never } })).message).toBe('module: processor "bad" is not a function');
    expect(errorOf(() => resolveModule({ workflows: [wf, wf], processors: { known: noop, missing: noop } })).message).toBe('module: duplicate workflow name "w"');
  });
});
