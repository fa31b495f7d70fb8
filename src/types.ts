import type { RunStatus, StepStatus, WorkerStatus } from './states';

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
  /** Name of the processor that runs the step (a key of the module's `processors`). */
  processor: string;
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
}

/** A workflow: a DAG of steps. */
export interface WorkflowDefinition {
  /** Unique; `[a-z0-9][a-z0-9._-]{0,63}`. */
  name: string;
  /** When a step fails for good, cancel the rest of the run. Default false. */
  failFast?: boolean;
  steps: StepDefinition[];
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
}

/** A validated workflow with its version hash. */
export interface ResolvedWorkflow {
  name: string;
  failFast: boolean;
  steps: ResolvedStep[];
  /** Hash of the canonical definition. */
  version: string;
}

/** What a processor receives. */
export interface ProcessorContext<Input = Record<string, unknown>> {
  /** The run's input (`{}` when the run had none). */
  input: Input;
  /** Output of each direct dependency, by step name. */
  parents: Record<string, any>;
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
}

/** A processor: its resolved value (JSON) is the step's output. */
export type Processor<Input = any, Output = unknown> = (ctx: ProcessorContext<Input>) => Output | Promise<Output>;

/** What a user module exports. */
export interface DroverModule {
  workflows?: WorkflowDefinition[];
  processors?: Record<string, Processor>;
}

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
  error: unknown;
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
}

/** A run with its steps (`GET /api/runs/:id`). */
export interface RunWithSteps extends RunView {
  steps: StepView[];
}

/** An audit event as the API shows it. */
export interface AuditEventView {
  id: string;
  at: string;
  type: string;
  runId: string;
  stepId: string | null;
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
  registeredAt: string;
}

/** Who makes a change, for the audit log: `api:<key name>`, `cli`, `client`, … */
export interface ActorOptions {
  actor?: string;
}
