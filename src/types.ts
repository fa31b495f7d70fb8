import type { ScheduleDefinition } from './schedules/schedule-definition';
import type { EntityManager, EntitySchema, MigrationInterface } from 'typeorm';
import type { RunStatus, StepStatus, WorkerStatus } from './states';
import type { JoinPolicy } from './entities/step.entity';

export type { JoinPolicy } from './entities/step.entity';
import type { RateLimit, StepConcurrency, WorkflowConcurrency } from './flow/flow-spec';

/** Backoff between attempts of a step. */
export interface BackoffOptions {
  /** `fixed`: always `delayMs`; `exponential`: `delayMs * 2^(attempt-1)`. */
  type: 'fixed' | 'exponential';
  /** Base delay in milliseconds. */
  delayMs: number;
}

/** One step of a workflow, as users write it. */
export interface StepDefinition {
  /** Unique within the workflow. */
  name: string;
  /**
   * Name of the processor that runs the step (a key of the module's `processors`).
   * Required, except for the kinds drover runs itself (`run`, `sleep`, `waitFor`); a `map` step names the processor of its elements.
   */
  processor?: string;
  /** A map step: the processor runs once per element of the array at `over` (`'<step>.<path>'`; at most 10,000), with `ctx.item` and `ctx.index`; the output is the results in order. */
  map?: { over: string };
  /** A child-run step: starts a run of `workflow` (its input: the run input, `'input'`, or a parent's value, `'<step>.<path>'`); the output is the child's output. */
  run?: { workflow: string; input?: string };
  /** A sleep step: `{ ms }`, or `{ until: '<step>.<path>' | 'input.<path>' }` (an ISO time). Holds no worker slot; the output is `{ sleptMs }`. */
  sleep?: { ms: number } | { until: string };
  /** A signal step: waits for `POST /api/runs/:id/signals/:signal`; fails after `timeoutMs` (default: waits on). The output is the signal's payload. */
  waitFor?: { signal: string; timeoutMs?: number };
  /** How the step joins its parents. Default `all_succeeded`. */
  join?: JoinPolicy;
  /** Names of the steps that must succeed first. Default none. */
  dependsOn?: string[];
  /** Attempts in all, including the first. Default 3. */
  attempts?: number;
  /** Backoff between attempts. Default `{ type: 'exponential', delayMs: 1000 }`. */
  backoff?: BackoffOptions;
  /** Wait after the step becomes ready, in ms. Default 0. */
  delayMs?: number;
  /** Limit of one attempt, in ms; a timeout is a retryable failure. Default none. */
  timeoutMs?: number;
  /** Queue whose workers take the step. Default `default`. */
  queue?: string;
  /** BullMQ priority: 1 is highest, 0 none. Default 0 (the run's priority applies). */
  priority?: number;
  /** A JSON object handed to the processor as `ctx.params`; part of the definition (and its version). Default none (`{}`). */
  params?: Record<string, unknown>;
  /**
   * A map step: how many elements run at once (a number; default all). Any other step: at most `limit` steps with the same
   * key value running, across all runs and workers (`{key, limit}`, CONTRACT §8). Default none.
   */
  concurrency?: number | StepConcurrency;
  /** At most `limit` starts of the step per `periodMs` per key value. Default none. */
  rateLimit?: RateLimit;
}

/** A workflow: a DAG of steps. */
export interface WorkflowDefinition {
  /** Unique; `[a-z0-9][a-z0-9._-]{0,63}`. */
  name: string;
  /** When a step fails for good, cancel the rest of the run. Default false. */
  failFast?: boolean;
  steps: StepDefinition[];
  /** The step whose output is the run's output. Default none: the outputs of the sink steps, by step name. */
  output?: string;
  /** A JSON Schema (2020-12 or draft-07) the run input must match; `createRun` and the API refuse others (`invalid_input`). Default none. */
  inputSchema?: Record<string, unknown>;
  /** A processor (by name, or a step `{ name?, processor, attempts?, timeoutMs?, queue? }`) that runs once after the run failed, with `ctx.failure`. Default none. */
  onFailure?: string | { name?: string; processor: string; attempts?: number; timeoutMs?: number; queue?: string };
  /** At most `limit` runs with the same key value running; `strategy` says what happens to the others (CONTRACT §8). Default none. */
  concurrency?: WorkflowConcurrency;
  /** At most `limit` run starts per `periodMs` per key value. Default none. */
  rateLimit?: RateLimit;
}

/** A step with every option resolved (what runs store and workers execute). */
export interface ResolvedStep {
  name: string;
  processor: string;
  dependsOn: string[];
  attempts: number;
  backoff: BackoffOptions;
  delayMs: number;
  timeoutMs: number | null;
  queue: string;
  priority: number;
  /** Present only when the definition gives params. */
  params?: Record<string, unknown>;
  /** Present only when given (CONTRACT §7). */
  join?: JoinPolicy;
  map?: { over: string; processor: string; concurrency?: number };
  run?: { workflow: string; input?: string };
  sleep?: { ms?: number; until?: string };
  waitFor?: { signal: string; timeoutMs?: number };
  /** Present only when the definition gives it. */
  concurrency?: StepConcurrency;
  /** Present only when the definition gives it. */
  rateLimit?: RateLimit;
}

/** A validated workflow with its version hash. */
export interface ResolvedWorkflow {
  name: string;
  failFast: boolean;
  steps: ResolvedStep[];
  /** The step whose output is the run's output; absent: the sink steps' outputs by name. */
  output?: string;
  /** The input's JSON Schema, when the definition has one (part of the version). */
  inputSchema?: Record<string, unknown>;
  /** The step that runs once after the run failed. */
  onFailure?: ResolvedStep;
  /** Present only when the definition gives it. */
  concurrency?: WorkflowConcurrency;
  /** Present only when the definition gives it. */
  rateLimit?: RateLimit;
  /** Hash of the canonical definition. */
  version: string;
}

/** What a processor receives. */
export interface ProcessorContext<Input = Record<string, unknown>> {
  /** The run's input (`{}` when the run had none). */
  input: Input;
  /** Output of each direct dependency, by step name (with `join: 'all_settled'`: each parent's `{ status, output, error }`). */
  parents: Record<string, any>;
  /** A map element: the element of the array. */
  item?: any;
  /** A map element: its index in the array. */
  index?: number;
  /** The workflow's onFailure step: the run's error and its failed steps. */
  failure?: RunFailure;
  /** The step's `params` from the definition the run started with (`{}` when none). */
  params: Record<string, unknown>;
  run: { id: string; workflow: string; workspace: string };
  /** `attempt` counts from 1. */
  step: { id: string; name: string; attempt: number };
  /** Aborted on cancel or timeout. */
  signal: AbortSignal;
  /** Appends a line to the step's log (BullMQ job log and Postgres). */
  log(message: string): void;
  /** Reports progress (number or object) on the BullMQ job. */
  progress(value: number | object): void;
  /** Stable for the step across attempts and redeliveries. */
  idempotencyKey: string;
  /**
   * Runs `work` with a Postgres transaction (TypeORM's `EntityManager`, on the
   * worker's database) that commits together with the step's success: the
   * rows `work` writes and the step's outcome are written both or neither. A
   * failed attempt, a timeout, a cancel or a crash rolls them back; every call
   * in one attempt shares the same transaction. The worker's `entities` option
   * gives the manager the user's entities.
   */
  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T>;
}

/**
 * A failed run's `error`: the steps that failed for good, and the first of
 * them (by when it failed, then by name) with its error's code.
 */
export interface RunError {
  /** `failed steps: a, b` (by name). */
  message: string;
  /** Every step that failed for good, by name (map elements, `name[i]`, included). */
  failedSteps: string[];
  /** The first step that failed for good (a map element's name when an element failed first). */
  step: string;
  /** That step's error code, when its error has one (a thrown error's string `code`, e.g. `budget_exceeded`; `child_failed`, `signal_timeout`, …). */
  code?: string;
}

/** What `ctx.failure` holds in a workflow's onFailure step. */
export interface RunFailure {
  /** The run's error (`RunError`). */
  error: RunError;
  /** Each step that failed for good, with its error. */
  steps: Array<{ name: string; error: unknown }>;
}

/** Anything that compiles to a plain definition and its processors (a typed workflow builder). */
export interface CompilableWorkflow {
  /** The plain definition (the wire format). */
  toDefinition(): WorkflowDefinition;
  /** The processors its steps name, by processor name. */
  toProcessors(): Record<string, Processor>;
}

/** A processor: its resolved value (JSON) is the step's output. */
export type Processor<Input = any, Output = unknown> = (ctx: ProcessorContext<Input>) => Output | Promise<Output>;

/** What a user module exports: plain definitions, or typed workflows (`workflow()`) that carry their processors. */
export interface DroverModule {
  workflows?: Array<WorkflowDefinition | CompilableWorkflow>;
  processors?: Record<string, Processor>;
  /** Cron schedules, stored in Postgres when a worker of this module starts (CONTRACT §8). */
  schedules?: ScheduleDefinition[];
  /** The app's own TypeORM entities (in its own schema), for `ctx.transaction`'s manager. */
  entities?: Array<Function | EntitySchema>;
  /** The app's own TypeORM migrations: a worker of this module runs them at start-up, before it consumes. */
  migrations?: Array<new () => MigrationInterface>;
  /** The table that records the app's migrations (required with `migrations`; not drover's own). */
  migrationsTableName?: string;
}

/** A run as `GET /api/runs` lists it: without `output` (its steps' outputs); `GET /api/runs/:id` has it. */
export type RunListItem = Omit<RunView, 'output'>;

/** A request to start a run. */
export interface CreateRunRequest {
  workflow: string;
  /** A JSON object; default `{}`. */
  input?: Record<string, unknown>;
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

/** A run as the API shows it. */
export interface RunView {
  id: string;
  workflow: string;
  status: RunStatus;
  input: Record<string, unknown> | null;
  output: Record<string, unknown> | null;
  /** A failed run's `RunError`; null otherwise (a cancelled run has none). */
  error: RunError | null;
  workspace: string;
  priority: number;
  idempotencyKey: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A step as the API shows it. */
export interface StepView {
  id: string;
  name: string;
  processor: string;
  queue: string;
  status: StepStatus;
  dependsOn: string[];
  attempts: number;
  output: unknown;
  error: unknown;
  createdAt: string;
  queuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** Why a queued step is not taken, when drover knows (e.g. no live worker has its processor). */
  waitingFor?: string;
  /** A map step: its elements' progress. */
  map?: MapProgress;
  /** A child-run step: the child run it started. */
  childRunId?: string;
}

/** A signal as the API answers it (`POST /api/runs/:id/signals/:signal`, 201). */
export interface SignalView {
  id: string;
  runId: string;
  signal: string;
  actor: string;
  createdAt: string;
  /** Whether it is the run's first signal of that name (the one a waiting step takes). */
  first: boolean;
  /** The steps it ended now (waiting steps of that signal). */
  delivered: string[];
}

/** A map step's elements, counted by outcome. */
export interface MapProgress {
  total: number;
  succeeded: number;
  /** Failed, cancelled or skipped. */
  failed: number;
  running: number;
  /** Pending or queued. */
  waiting: number;
}

/** A child run, as its parent's view lists it. */
export interface ChildRunView {
  id: string;
  workflow: string;
  status: RunStatus;
  /** The parent's step that started it. */
  step: string | null;
  createdAt: string;
}

/** A run with its steps (`GET /api/runs/:id`). */
export interface RunWithSteps extends RunView {
  steps: StepView[];
  /** The run whose `run` step started this one (null: started by a producer). */
  parentRunId?: string | null;
  parentStepId?: string | null;
  /** The runs this run's `run` steps started, oldest first. */
  children?: ChildRunView[];
}

/** An audit event as the API shows it. */
export interface AuditEventView {
  id: string;
  at: string;
  type: string;
  runId: string;
  stepId: string | null;
  /** The step's name; null for run events. */
  stepName: string | null;
  actor: string;
  data: unknown;
}

/** Filters and paging of `listRuns`. */
export interface ListRunsQuery {
  status?: RunStatus;
  workflow?: string;
  workspace?: string;
  /** 1..100, default 20. */
  limit?: number;
  /** Opaque cursor from a previous page. */
  cursor?: string;
}

/** One page of a list. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Result of `createRuns`. */
export interface BatchCreateResult {
  created: number;
  failed: number;
  items: Array<{ index: number; id?: string; existing?: boolean; error?: { code: string; message: string; details?: unknown } }>;
}

/** A worker process in the registry. */
export interface WorkerView {
  id: string;
  hostname: string;
  pid: number;
  queues: string[];
  concurrency: number;
  version: string;
  /** Processors it registered. */
  processors: string[];
  startedAt: string;
  lastHeartbeatAt: string;
  status: WorkerStatus;
}

/** A registered workflow (its current version). */
export interface WorkflowView {
  name: string;
  version: string;
  failFast: boolean;
  steps: ResolvedStep[];
  /** The input's JSON Schema, or null when the version has none. */
  inputSchema: Record<string, unknown> | null;
  registeredAt: string;
}

/** Who makes a change, for the audit log: `api:<key name>`, `cli`, `client`, … */
export interface ActorOptions {
  actor?: string;
}

/**
 * A workspace limit (an API key's, see `ApiKeyStore.create`): runs of other
 * workspaces are not found (listed, read or acted on), and creating into them
 * is `forbidden`. Absent or null: every workspace.
 */
export interface AccessOptions {
  workspaces?: readonly string[] | null;
}
