/**
 * The types of typed workflows that producers need (`drover.start`,
 * `DroverClient.start`): a workflow's name, input and output. Types only, so
 * the HTTP client can `import type` them without loading anything of the engine.
 */

/** A JSON value: what step outputs, params and run inputs hold (a `Date`, a function or a class instance is not one). */
export type Json = string | number | boolean | null | Json[] | readonly Json[] | { [key: string]: Json | undefined };

/** A JSON object. */
export type JsonObject = { [key: string]: Json | undefined };

/**
 * A workflow as producers see it: its name and the types of its input and
 * output. `workflow()` returns one; a producer that cannot import the
 * workflow's module names it by type only (`client.start<typeof crawl>('crawl', …)`).
 */
export interface TypedWorkflow<N extends string = string, I = JsonObject, O = unknown> {
  /** The workflow's name (a literal type for typed workflows). */
  readonly name: N;
  /** Types only: never set at run time. */
  readonly __types?: { readonly input: I; readonly output: O };
}

/** The input a producer passes to start a run of `W` (the schema's input type). */
export type WorkflowInput<W> = W extends TypedWorkflow<string, infer I, unknown> ? I : never;

/** What `result()` resolves for a run of `W`: the explicit output, or the sinks' outputs by step name. */
export type WorkflowOutput<W> = W extends TypedWorkflow<string, unknown, infer O> ? O : never;

/** The name of `W`. */
export type WorkflowName<W> = W extends TypedWorkflow<infer N, unknown, unknown> ? N : never;

/** The arguments after the workflow: the input (optional when every field is), then options. */
export type StartArgs<W, Options> = {} extends WorkflowInput<W>
  ? [input?: WorkflowInput<W>, options?: Options]
  : [input: WorkflowInput<W>, options?: Options];

/** A started run, in process or over HTTP. */
export interface RunHandle<O, Run> {
  /** The run's id. */
  readonly id: string;
  /** The run as created (or the existing one, for a seen idempotency key). */
  readonly run: Run;
  /**
   * Waits for the run to finish and resolves its output; rejects with
   * `RunFailedError` (failed or cancelled) or a wait timeout error.
   */
  result(options?: { timeoutMs?: number; pollMs?: number }): Promise<O>;
}

/** Options of `start` besides the input. */
export interface StartOptions {
  /** Seen before in the workspace: the existing run is returned. */
  idempotencyKey?: string;
  /** BullMQ priority applied to the run's steps (1 highest, 0 none). */
  priority?: number;
  /** Delay before the run's first steps, in ms. */
  delayMs?: number;
  /** Or the time the run's first steps may start (ISO 8601 with a time zone, or a Date); not with `delayMs`. */
  runAt?: string | Date;
  /** Default `default`. */
  workspace?: string;
}
