import { NonRetryableError } from '../errors';
import type { DroverModule, Processor, WorkflowDefinition } from '../types';

/**
 * The built-in demo workflows that `drover start` registers, to show drover at
 * a glance:
 * - `demo`: fan-out and fan-in passing outputs along, a step that fails twice
 *   before succeeding (retries with exponential backoff), and a delayed step;
 * - `demo-failure`: a non-retryable failure that skips its dependent while an
 *   independent branch still finishes.
 */
export const demoWorkflows: WorkflowDefinition[] = [
  {
    name: 'demo',
    steps: [
      { name: 'fetch', processor: 'demo.fetch' },
      { name: 'count-words', processor: 'demo.count-words', dependsOn: ['fetch'] },
      { name: 'flaky-lookup', processor: 'demo.flaky-lookup', dependsOn: ['fetch'], attempts: 3, backoff: { type: 'exponential', delayMs: 200 } },
      { name: 'delayed-enrich', processor: 'demo.enrich', dependsOn: ['fetch'], delayMs: 1500 },
      { name: 'summarize', processor: 'demo.summarize', dependsOn: ['count-words', 'flaky-lookup', 'delayed-enrich'] },
    ],
  },
  {
    name: 'demo-failure',
    steps: [
      { name: 'validate', processor: 'demo.reject', attempts: 5 },
      { name: 'publish', processor: 'demo.summarize', dependsOn: ['validate'] },
      { name: 'audit', processor: 'demo.fetch' },
    ],
  },
];

const TEXT = 'the drover drives the herd along the road and the herd arrives';

/** The processors of the demo workflows. */
export const demoProcessors: Record<string, Processor> = {
  'demo.fetch': async (ctx) => {
    ctx.log(`fetching ${String(ctx.input.url ?? 'the demo text')}`);
    return { text: typeof ctx.input.text === 'string' ? ctx.input.text : TEXT };
  },
  'demo.count-words': async (ctx) => {
    const words = String(ctx.parents.fetch.text).split(/\s+/).filter(Boolean);
    const counts: Record<string, number> = {};
    for (const w of words) counts[w] = (counts[w] ?? 0) + 1;
    return { words: words.length, top: Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 3) };
  },
  'demo.flaky-lookup': async (ctx) => {
    if (ctx.step.attempt <= 2) throw new Error(`lookup service busy (attempt ${ctx.step.attempt}); retrying with backoff`);
    return { attempt: ctx.step.attempt, language: 'en' };
  },
  'demo.enrich': async (ctx) => ({ characters: String(ctx.parents.fetch.text).length, enrichedAt: new Date().toISOString() }),
  'demo.summarize': async (ctx) => ({ summary: ctx.parents }),
  'demo.reject': async () => {
    throw new NonRetryableError('the input is invalid: retrying cannot help');
  },
};

/** The demo as a module. */
export const demoModule: DroverModule = { workflows: demoWorkflows, processors: demoProcessors };
