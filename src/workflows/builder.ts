import type * as zc from 'zod/v4/core';
import { safeParse, toJSONSchema } from 'zod/v4/core';
import { DefinitionError, NonRetryableError } from '../errors';
import { findNonJson, isJsonObject } from '../json';
import type { BackoffOptions, CompilableWorkflow, Processor, ProcessorContext, StepDefinition, WorkflowDefinition } from '../types';
import { STEP_NAME, WORKFLOW_NAME } from './definitions';
import type { JoinPolicy } from '../entities/step.entity';
import type { RateLimit, StepConcurrency, WorkflowConcurrency } from '../flow/flow-spec';
import type { Json, JsonObject, TypedWorkflow, WorkflowOutput } from './typed';

/** A zod (v4, classic or mini) schema. */
export type InputSchema = zc.$ZodType;

/** What `ctx.input` holds: the schema's output type (defaults applied), or any JSON object without a schema. */
export type ParsedInput<S> = S extends zc.$ZodType ? zc.output<S> : JsonObject;
/** What a producer passes: the schema's input type, or any JSON object without a schema. */
export type RawInput<S> = S extends zc.$ZodType ? zc.input<S> : JsonObject;

/** What a step's processor may return: JSON (an object type written with `type`, not `interface`), or nothing. */
export type StepOutput = Json | void;

/**
 * A reference to a step, returned by `wf.step()`: carries the workflow's
 * name, the step's name and its output type, so a dependent's `ctx.parents`
 * is typed. Pass it in a later step's `parents`, or to `wf.output()`.
 */
export interface StepRef<W extends string = string, N extends string = string, O = unknown> {
  /** The workflow it belongs to. */
  readonly workflow: W;
  /** The step's name. */
  readonly name: N;
  /** The processor name drover derives for it: `<workflow>/<step>`. */
  readonly processor: string;
  /** Types only: never set at run time. */
  readonly __output?: O;
}

/** The output type a step reference carries. */
export type OutputOfRef<R> = R extends StepRef<string, string, infer O> ? O : never;

/** `ctx.parents` of a step whose `parents` are `P`: each parent's output by its step name. */
export type ParentsOf<P extends readonly StepRef[]> = { readonly [R in P[number] as R['name']]: OutputOfRef<R> };

/** A parent as a step with `join: 'all_settled'` sees it: its status, and its output or error. */
export interface SettledParent<O> {
  readonly status: 'succeeded' | 'failed' | 'cancelled' | 'skipped';
  /** The parent's output when it succeeded, else null. */
  readonly output: O | null;
  /** The parent's error when it failed, else null. */
  readonly error: { readonly message: string; readonly code?: string } | null;
}

/**
 * `ctx.parents` of a step by its join policy (CONTRACT §7): `all_succeeded`,
 * every parent's output; `any_succeeded`, each parent's output, null for a
 * parent that has not succeeded; `all_settled`, each parent settled.
 */
export type JoinedParentsOf<P extends readonly StepRef[], J extends JoinPolicy> =
  J extends 'all_settled' ? { readonly [R in P[number] as R['name']]: SettledParent<OutputOfRef<R>> }
    : J extends 'any_succeeded' ? { readonly [R in P[number] as R['name']]: OutputOfRef<R> | null }
      : ParentsOf<P>;

/** The default output of a workflow: the sink steps' outputs by step name. */
export type SinkOutputs = Record<string, Json>;

/** What a typed step's processor receives. */
export interface StepContext<I, P, Params> extends Omit<ProcessorContext, 'input' | 'parents' | 'params'> {
  /** The run's input, parsed by the workflow's schema. */
  input: I;
  /** The output of each parent, by step name. */
  parents: P;
  /** The step's `params`. */
  params: Params;
}

/** Options of `wf.step()` (the plain step options of CONTRACT §1, with parents as references). */
export interface TypedStepOptions<P extends readonly StepRef[], Params extends JsonObject, J extends JoinPolicy = JoinPolicy> {
  /** Steps that must succeed first: references returned by earlier `step()` calls of this workflow. Default none. */
  parents?: P;
  /**
   * When the step runs, given its parents (CONTRACT §7): `all_succeeded` (default: skipped when a parent did not
   * succeed), `all_settled` (once every parent is terminal; `ctx.parents` has each one's status, output and error)
   * or `any_succeeded` (once one parent succeeded; skipped when none can).
   */
  join?: J;
  /** Attempts in all, including the first. Default 3. */
  attempts?: number;
  /** Backoff between attempts. Default `{ type: 'exponential', delayMs: 1000 }`. */
  backoff?: BackoffOptions;
  /** Limit of one attempt, in ms; a timeout is a retryable failure. Default none. */
  timeoutMs?: number;
  /** Queue whose workers take the step. Default `default`. */
  queue?: string;
  /** Wait after the step becomes ready, in ms. Default 0. */
  delayMs?: number;
  /** BullMQ priority: 1 is highest, 0 none. Default 0. */
  priority?: number;
  /** JSON handed to the processor as `ctx.params`; part of the definition, so a run keeps the params it started with. Default `{}`. */
  params?: Params;
  /** At most `limit` steps with the same key value (`input.<path>` or a constant) running, across all runs and workers. Default none. */
  concurrency?: StepConcurrency;
  /** At most `limit` starts of the step per `periodMs` per key value. Default none. */
  rateLimit?: RateLimit;
}

/** Options of `workflow()`. */
export interface TypedWorkflowOptions<S extends InputSchema | undefined> {
  /** A zod schema of the run input: `ctx.input` has its type, and `start()` checks the input against it. Default none. */
  input?: S;
  /** When a step fails for good, cancel the rest of the run. Default false. */
  failFast?: boolean;
  /** At most `limit` runs with the same key value running; `strategy` `queue` (default), `cancel_newest` or `cancel_in_progress`. Default none. */
  concurrency?: WorkflowConcurrency;
  /** At most `limit` run starts per `periodMs` per key value. Default none. */
  rateLimit?: RateLimit;
}

/**
 * A typed workflow under construction: add steps with `step()`, name the run's
 * output with `output()`. It compiles to the plain definition (`toDefinition()`)
 * and its processors (`toProcessors()`, named `<workflow>/<step>`), which is
 * what a worker registers and runs; nothing else about it reaches the database.
 */
export class WorkflowBuilder<N extends string, S extends InputSchema | undefined = undefined, O = SinkOutputs>
implements TypedWorkflow<N, RawInput<S>, O>, CompilableWorkflow {
  /** The workflow's name. */
  readonly name: N;
  /** The input schema, when given. */
  readonly inputSchema: S | undefined;
  /** Types only: never set at run time. */
  declare readonly __types?: { readonly input: RawInput<S>; readonly output: O };
  private readonly failFast: boolean;
  private readonly flow: Pick<WorkflowDefinition, 'concurrency' | 'rateLimit'>;
  private readonly steps: StepDefinition[] = [];
  private readonly processors: Record<string, Processor> = {};
  private outputStep?: string;
  private onFailureStep?: WorkflowDefinition['onFailure'];

  constructor(name: N, options: TypedWorkflowOptions<S> = {}) {
    if (typeof name !== 'string' || !WORKFLOW_NAME.test(name)) {
      throw new DefinitionError(`workflow ${JSON.stringify(name)}: the name must match [a-z0-9][a-z0-9._-]{0,63}`);
    }
    this.name = name;
    this.inputSchema = options.input;
    this.failFast = options.failFast ?? false;
    this.flow = {
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit }),
    };
    if (options.input !== undefined && !isZodSchema(options.input)) {
      throw new DefinitionError(`workflow "${name}": input must be a zod schema`);
    }
  }

  /**
   * Adds a step. `fn` gets `ctx.input` (the schema's type), `ctx.parents` (each
   * parent's output, by name) and `ctx.params`; what it returns (JSON) is the
   * step's output. Returns the step's reference.
   */
  step<const SN extends string, R extends StepOutput, const P extends readonly StepRef<N>[] = [], const Params extends JsonObject = Record<never, never>, const J extends JoinPolicy = 'all_succeeded'>(
    name: SN,
    options: TypedStepOptions<P, Params, J>,
    fn: (ctx: StepContext<ParsedInput<S>, JoinedParentsOf<P, J>, Params>) => R | Promise<R>,
  ): StepRef<N, SN, Awaited<R> extends void ? null : Awaited<R>> {
    const label = `workflow "${this.name}", step ${JSON.stringify(name)}`;
    if (typeof name !== 'string' || !STEP_NAME.test(name)) throw new DefinitionError(`${label}: the name must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}`);
    if (this.steps.some((s) => s.name === name)) throw new DefinitionError(`workflow "${this.name}": duplicate step name "${name}"`);
    if (typeof fn !== 'function') throw new DefinitionError(`${label}: the last argument must be the step's function`);
    const { parents = [], params, ...rest } = (options ?? {}) as TypedStepOptions<readonly StepRef[], JsonObject>;
    if (!Array.isArray(parents)) throw new DefinitionError(`${label}: parents must be an array of step references`);
    const dependsOn = parents.map((ref) => {
      // The compiler catches these; plain JavaScript reaches here.
      if (!ref || typeof ref !== 'object' || typeof ref.name !== 'string') throw new DefinitionError(`${label}: parents must be step references returned by step()`);
      if (ref.workflow !== this.name || !this.steps.some((s) => s.name === ref.name)) {
        throw new DefinitionError(`${label}: parent "${ref.name}" is not a step of this workflow`);
      }
      return ref.name;
    });
    if (params !== undefined) {
      const bad = isJsonObject(params) ? findNonJson(params, 'params') : 'params must be a JSON object';
      if (bad) throw new DefinitionError(`${label}: ${bad}`);
    }
    const processor = `${this.name}/${name}`;
    this.steps.push({
      name, processor, ...rest, ...(dependsOn.length ? { dependsOn } : {}), ...(params === undefined ? {} : { params }),
    });
    const schema = this.inputSchema;
    this.processors[processor] = async (ctx: ProcessorContext) => {
      const input = schema === undefined ? ctx.input : parseInput(schema, ctx.input, this.name);
      const output = await fn({ ...ctx, input } as unknown as StepContext<ParsedInput<S>, JoinedParentsOf<P, J>, Params>);
      return output === undefined ? null : output;
    };
    return { workflow: this.name, name, processor };
  }

  /** A durable sleep (CONTRACT §7): `{ ms }`, or `{ until }`, a path to an ISO time (`'input.at'`, `'<parent>.<path>'`). Holds no worker slot. */
  sleep<const SN extends string, const P extends readonly StepRef<N>[] = []>(name: SN, options: ({ ms: number } | { until: string }) & { parents?: P }): StepRef<N, SN, { sleptMs: number }> {
    const { parents, ...sleep } = options as { parents?: P; ms?: number; until?: string };
    return this.addKind(name, parents, { sleep: sleep as { ms: number } });
  }

  /** Waits for a signal (`POST /api/runs/:id/signals/:signal`); its payload (any JSON) is the output. Fails after `timeoutMs` when given. */
  waitFor<const SN extends string, const P extends readonly StepRef<N>[] = [], T extends Json = Json>(name: SN, options: { signal: string; timeoutMs?: number; parents?: P }): StepRef<N, SN, T> {
    const { parents, ...waitFor } = options;
    return this.addKind(name, parents, { waitFor });
  }

  /** Starts a child run of `workflow` (its input: `'input'` or a parent's value, `'<parent>.<path>'`); the child's output is the step's. */
  child<const SN extends string, W extends TypedWorkflow<string, any, any> | string, const P extends readonly StepRef<N>[] = []>(
    name: SN, options: { workflow: W; input?: string; parents?: P },
  ): StepRef<N, SN, W extends TypedWorkflow<string, any, any> ? WorkflowOutput<W> : Json> {
    const { parents, workflow, input } = options;
    return this.addKind(name, parents, { run: { workflow: typeof workflow === 'string' ? workflow : workflow.name, ...(input === undefined ? {} : { input }) } });
  }

  /**
   * A map step: `fn` runs once per element of the array at `over` (a parent,
   * with `path` into its output; at most 10,000), with `ctx.item` and
   * `ctx.index`; the output is the results in order. `concurrency` bounds how
   * many run at once; each element has the step's retries.
   */
  map<const SN extends string, R extends StepOutput, Ref extends StepRef<N>, const P extends readonly StepRef<N>[] = []>(
    name: SN,
    options: Omit<TypedStepOptions<P, Record<never, never>>, 'params' | 'concurrency' | 'join'> & { over: Ref; path?: string; concurrency?: number },
    fn: (ctx: StepContext<ParsedInput<S>, ParentsOf<[...P, Ref]>, Record<never, never>> & { item: unknown; index: number }) => R | Promise<R>,
  ): StepRef<N, SN, Array<Awaited<R> extends void ? null : Awaited<R>>> {
    const { over, path, concurrency, parents = [] as unknown as P, ...rest } = options;
    const all = (parents as readonly StepRef<N>[]).some((p) => p.name === over?.name) ? parents : [...parents, over];
    const ref = this.step(name, { ...rest, parents: all } as TypedStepOptions<readonly StepRef<N>[], Record<never, never>>, fn as never);
    const step = this.steps[this.steps.length - 1];
    step.map = { over: path ? `${over.name}.${path}` : over.name };
    if (concurrency !== undefined) step.concurrency = concurrency;
    return ref as unknown as StepRef<N, SN, Array<Awaited<R> extends void ? null : Awaited<R>>>;
  }

  /** The step that runs once after a run of this workflow failed, with `ctx.failure` (the run's error and failed steps). */
  onFailure(fn: (ctx: StepContext<ParsedInput<S>, Record<string, never>, Record<never, never>>) => StepOutput | Promise<StepOutput>, options: { attempts?: number; timeoutMs?: number; queue?: string } = {}): this {
    if (typeof fn !== 'function') throw new DefinitionError(`workflow "${this.name}": onFailure takes the step's function`);
    const processor = `${this.name}/onFailure`;
    this.processors[processor] = async (ctx: ProcessorContext) => (await fn(ctx as never)) ?? null;
    this.onFailureStep = { processor, ...options };
    return this;
  }

  /** Adds a step drover runs itself (sleep, signal, child run) after the checks of `step()`. */
  private addKind<R>(name: string, parents: readonly StepRef[] | undefined, kind: Partial<StepDefinition>): R {
    const ref = this.step(name, { parents: parents ?? [] } as TypedStepOptions<readonly StepRef<N>[], Record<never, never>>, () => null);
    const step = this.steps[this.steps.length - 1];
    delete this.processors[step.processor!];
    delete step.processor;
    Object.assign(step, kind);
    return { workflow: this.name, name, processor: `drover:${Object.keys(kind)[0]}` } as unknown as R;
  }

  /**
   * Names the step whose output is the run's output (default: the sink steps'
   * outputs by step name). Returns this workflow, typed with that output:
   * export the returned value for producers (`export const crawl = wf.output(parse)`).
   */
  output<R extends StepRef<N>>(ref: R): WorkflowBuilder<N, S, OutputOfRef<R>> {
    if (!ref || ref.workflow !== this.name || !this.steps.some((s) => s.name === ref.name)) {
      throw new DefinitionError(`workflow "${this.name}": output must be a step reference of this workflow`);
    }
    this.outputStep = ref.name;
    return this as unknown as WorkflowBuilder<N, S, OutputOfRef<R>>;
  }

  /** The plain definition (CONTRACT §1): what the registry stores and runs snapshot. */
  toDefinition(): WorkflowDefinition {
    if (this.steps.length === 0) throw new DefinitionError(`workflow "${this.name}": a workflow needs at least one step`);
    return {
      name: this.name,
      ...(this.failFast ? { failFast: true } : {}),
      ...this.flow,
      steps: this.steps.map((s) => ({ ...s })),
      ...(this.outputStep === undefined ? {} : { output: this.outputStep }),
      ...(this.onFailureStep === undefined ? {} : { onFailure: this.onFailureStep }),
      // What producers send (defaults optional); a type JSON Schema cannot say (a transform, a date) accepts anything.
      ...(this.inputSchema === undefined ? {} : { inputSchema: toJSONSchema(this.inputSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown> }),
    };
  }

  /** The processors of its steps, by their derived names (`<workflow>/<step>`). */
  toProcessors(): Record<string, Processor> {
    return { ...this.processors };
  }

  /**
   * Checks a run input against the schema (producers call it before creating a run).
   * @returns the first issue as `{ path, message }`, or undefined when valid (or without a schema).
   */
  checkInput(input: unknown): { path: string; message: string } | undefined {
    if (this.inputSchema === undefined) return undefined;
    const result = safeParse(this.inputSchema, input);
    return result.success ? undefined : firstIssue(result.error);
  }
}

/**
 * Starts a typed workflow (CONTRACT §1b). Add steps with `.step()`; name its
 * output with `.output()`; export it (or a list of them) from a module.
 */
export function workflow<const N extends string, S extends InputSchema | undefined = undefined>(
  name: N,
  options: TypedWorkflowOptions<S> = {},
): WorkflowBuilder<N, S> {
  return new WorkflowBuilder(name, options);
}

/**
 * Whether a value is a typed workflow builder. Duck-typed, not `instanceof`:
 * a module may load another copy of drover than the worker's.
 */
export function isWorkflowBuilder(value: unknown): value is WorkflowBuilder<string, InputSchema | undefined, unknown> {
  return typeof value === 'object' && value !== null && typeof (value as WorkflowBuilder<string>).toDefinition === 'function'
    && typeof (value as WorkflowBuilder<string>).checkInput === 'function';
}

function isZodSchema(value: unknown): boolean {
  return typeof value === 'object' && value !== null && '_zod' in value;
}

function parseInput(schema: InputSchema, input: unknown, workflowName: string): unknown {
  const result = safeParse(schema, input);
  if (result.success) return result.data;
  const issue = firstIssue(result.error);
  throw new NonRetryableError(`the run input does not match the input schema of workflow "${workflowName}": ${issue.path}: ${issue.message}`);
}

function firstIssue(error: zc.$ZodError): { path: string; message: string } {
  const issue = error.issues[0];
  const path = ['input', ...issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))].join('.').replace(/\.\[/g, '[');
  return { path, message: issue.message };
}
