import { resolveWorkflow } from '../src/workflows/definitions';

const wf = (steps: unknown[], extra: Record<string, unknown> = {}) => ({ name: 'w', steps, ...extra });

describe('definitions of the waiting kinds and join policies', () => {
  it('resolves each kind to a built-in processor and keeps its options', () => {
    const resolved = resolveWorkflow(wf([
      { name: 'a', processor: 'p' },
      { name: 'm', dependsOn: ['a'], map: { over: 'a.items' }, processor: 'each', concurrency: 4 },
      { name: 'c', dependsOn: ['a'], run: { workflow: 'other', input: 'a.task' } },
      { name: 's', dependsOn: ['a'], sleep: { until: 'a.at' } },
      { name: 'g', waitFor: { signal: 'go', timeoutMs: 1000 } },
      { name: 'j', dependsOn: ['m', 'c'], join: 'any_succeeded', processor: 'p' },
    ], { onFailure: 'alert' }), { p: () => 1, each: () => 1, alert: () => 1 });
    expect(resolved.steps.map((s) => [s.name, s.processor])).toEqual([
      ['a', 'p'], ['m', 'drover:map'], ['c', 'drover:run'], ['s', 'drover:sleep'], ['g', 'drover:signal'], ['j', 'p'],
    ]);
    expect(resolved.steps[1].map).toEqual({ over: 'a.items', processor: 'each', concurrency: 4 });
    expect(resolved.steps[5].join).toBe('any_succeeded');
    expect(resolved.onFailure).toMatchObject({ name: 'onFailure', processor: 'alert', attempts: 3 });
  });

  it('keeps the version of a definition that uses none of them', () => {
    const plain = wf([{ name: 'a', processor: 'p' }, { name: 'b', processor: 'p', dependsOn: ['a'] }]);
    // The kinds add no keys when absent, so the canonical form (and the version hash) is what it was.
    expect(Object.keys(resolveWorkflow(plain).steps[1]).sort()).toEqual(['attempts', 'backoff', 'delayMs', 'dependsOn', 'name', 'priority', 'processor', 'queue', 'timeoutMs']);
  });

  it.each([
    [[{ name: 'x', sleep: { ms: 1 }, waitFor: { signal: 'go' } }], 'workflow "w", step "x": set only one of map, run, sleep, waitFor (it has sleep and waitFor)'],
    [[{ name: 'x', sleep: { ms: 1 }, processor: 'p' }], 'workflow "w", step "x": a sleep step has no processor (drover runs it)'],
    [[{ name: 'x' }], 'workflow "w", step "x": needs a processor (or one of map, run, sleep, waitFor)'],
    [[{ name: 'x', map: { over: 'input.items' } }], 'workflow "w", step "x": a map step names the processor that runs each element'],
    [[{ name: 'a', processor: 'p' }, { name: 'x', map: { over: 'b.items' }, processor: 'p', dependsOn: ['a'] }], 'workflow "w", step "x": map.over "b.items" must start with "input" or a step it dependsOn (a)'],
    [[{ name: 'x', processor: 'p', join: 'all_settled' }], 'workflow "w", step "x": join needs dependsOn'],
    [[{ name: 'a', processor: 'p' }, { name: 'x', processor: 'p', dependsOn: ['a'], join: 'most' }], 'workflow "w", step "x": join: join must be "all_succeeded", "all_settled" or "any_succeeded"'],
    [[{ name: 'x', processor: 'p', concurrency: 2 }], 'workflow "w", step "x": concurrency (a number) is for map steps; other steps take {key, limit}'],
    [[{ name: 'x', sleep: { until: 'input' } }], 'workflow "w", step "x": sleep.until must be a path to an ISO time, such as "input.at"'],
    [[{ name: 'x', waitFor: { signal: 'no spaces' } }], 'workflow "w", step "x": waitFor.signal: must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}'],
  ])('refuses %j', (steps, message) => {
    expect(() => resolveWorkflow(wf(steps))).toThrow(message);
  });

  it('refuses an onFailure step named as a step, or with an unknown processor', () => {
    expect(() => resolveWorkflow(wf([{ name: 'onFailure', processor: 'p' }], { onFailure: 'p' }))).toThrow('workflow "w": onFailure is named "onFailure", as a step is already');
    expect(() => resolveWorkflow(wf([{ name: 'a', processor: 'p' }], { onFailure: 'nope' }), { p: () => 1 })).toThrow('workflow "w", onFailure: unknown processor "nope"');
  });
});
