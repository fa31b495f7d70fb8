/** Deterministic agents and tools: no network, no model. */
import { DroverError } from '../../src/errors';

/** The lead's plan: the task's title decides each member's tool (`hang` in the title makes the builder's tool hang). */
export function planTask(title: string): { research: { tool: string; instruction: string }; build: { tool: string; instruction: string } } {
  return {
    research: { tool: 'search', instruction: `find prior work on "${title}"` },
    build: { tool: /\bhang\b/i.test(title) ? 'hang' : 'compile', instruction: `build "${title}"` },
  };
}

/** Runs a tool. `hang` never answers: only the step's timeout (its AbortSignal) ends it. */
export async function runTool(tool: string, instruction: string, signal: AbortSignal): Promise<string> {
  if (tool === 'search') return `search: 3 results for ${instruction}`;
  if (tool === 'compile') return `compile: ok (${instruction})`;
  if (tool === 'hang') {
    return new Promise((_, reject) => {
      const stop = () => reject(new DroverError('tool_aborted', `tool ${tool} was aborted`, { retryable: false }));
      if (signal.aborted) stop(); else signal.addEventListener('abort', stop, { once: true });
    });
  }
  throw new DroverError('unknown_tool', `unknown tool "${tool}"`, { retryable: false });
}
