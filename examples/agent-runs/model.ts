/**
 * A deterministic fake model (no network): it reads the prompt and asks for a
 * tool per instruction it recognises. Its token count is the prompt's words
 * times 10, so a test knows what a call costs.
 */
export type ToolRequest = { id: string; tool: string; args: { target: string } };
export type ModelAnswer = { tokens: number; text: string; toolCalls: ToolRequest[] };

const VERBS: Record<string, string> = {
  search: 'web_search', read: 'read_file', delete: 'delete_records', email: 'send_email', run: 'exec_shell', flaky: 'flaky_lookup',
};

export function fakeModel(prompt: string): ModelAnswer {
  const words = prompt.trim().split(/\s+/).filter(Boolean);
  const toolCalls: ToolRequest[] = [];
  words.forEach((word, i) => {
    const tool = VERBS[word.toLowerCase()];
    if (tool) toolCalls.push({ id: `call_${toolCalls.length}`, tool, args: { target: words[i + 1] ?? '' } });
  });
  return { tokens: words.length * 10, text: `I will use ${toolCalls.length} tool(s).`, toolCalls };
}

/** Fake tools: each returns a small JSON result; `flaky_lookup` fails its first attempt (after it was charged). */
export function runTool(tool: string, args: { target: string }, attempt: number): { tool: string; result: string } {
  if (tool === 'flaky_lookup' && attempt === 1) throw new Error('flaky_lookup: upstream timed out');
  return { tool, result: `${tool}(${args.target}) ok` };
}

/** Tokens each tool call costs. */
export const TOOL_TOKENS = 5;
/** Tokens of the final answer. */
export const ANSWER_TOKENS = 20;
