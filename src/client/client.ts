import { DroverError } from '../errors';
import type {
  AuditEventView, BatchCreateResult, CreateRunRequest, ListRunsQuery, Page, RunListItem, RunView, RunWithSteps, SignalView, WorkerView, WorkflowView,
} from '../types';
import type { RunHandle, StartArgs, StartOptions, TypedWorkflow, WorkflowOutput } from '../workflows/typed';
import type { ScheduleDefinition } from '../schedules/schedule-definition';
import type { ScheduleView } from '../schedules/schedule-store';
import type { StepLogPage } from '../steps/step-logs';
import type { MapElementPage } from '../waits/map-elements';
import { outputOfRun } from './result';
import { pollRun, type WaitOptions } from './wait';

/** Options of `DroverClient`. */
export interface DroverClientOptions {
  /** Where the drover server listens, e.g. `http://127.0.0.1:3000`. */
  baseUrl: string;
  /** An API key from `drover keys create` (omit when the server runs with `DROVER_AUTH=off`). */
  apiKey?: string;
  /** Limit of one HTTP request. Default 30 000 ms. */
  timeoutMs?: number;
  /** The fetch implementation. Default the global `fetch`. */
  fetch?: typeof fetch;
}

/**
 * An error answer of the drover API (`status` and the contract's `code`:
 * `invalid_request`, `unknown_workflow`, `not_found`, `invalid_state`, …), or
 * a request that got no answer (`status` 0, `code` `unreachable` or `timeout`).
 */
export class DroverApiError extends DroverError {
  constructor(readonly status: number, code: string, message: string, details?: unknown, cause?: unknown) {
    super(code, message, { details, cause, retryable: status === 0 || status === 503 || status === 429 });
  }
}

/** `waitForRun` reached its deadline: the same error as the in-process `WaitTimeoutError`. */
export { WaitTimeoutError as ClientWaitTimeoutError } from './wait';

const MAX_BATCH = 1000;

/**
 * The producer API of `Drover` over HTTP, for services that do not link the
 * engine: the same method names, the same JSON shapes, and `DroverApiError`
 * carrying the API's status and code.
 */
export class DroverClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: DroverClientOptions) {
    let url: URL;
    try {
      url = new URL(options?.baseUrl);
    } catch {
      throw new TypeError(`DroverClient: baseUrl must be an http(s) URL (got ${JSON.stringify(options?.baseUrl)})`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`DroverClient: baseUrl must be an http(s) URL (got ${url.protocol})`);
    this.baseUrl = url.toString().replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Starts a run (or returns the existing one for a seen idempotency key). */
  createRun(request: CreateRunRequest): Promise<RunView> {
    return this.request('POST', '/api/runs', request);
  }

  /**
   * Starts a run of a typed workflow, named by type only so nothing of the
   * engine is imported: `client.start<typeof crawl>('crawl', { url })`. The
   * handle's `result()` resolves the typed output (or rejects with `RunFailedError`).
   */
  async start<W extends TypedWorkflow<string, any, any>>(workflow: W | W['name'], ...[input, options]: StartArgs<W, StartOptions>): Promise<RunHandle<WorkflowOutput<W>, RunView>> {
    const name = typeof workflow === 'string' ? workflow : workflow.name;
    const run = await this.createRun({ ...options, workflow: name, input: (input ?? {}) as Record<string, unknown> });
    return { id: run.id, run, result: (wait) => this.result<W>(run.id, wait) };
  }

  /** Waits for a run to finish and resolves its output, typed by `W`; rejects with `RunFailedError` when it failed or was cancelled. */
  async result<W extends TypedWorkflow<string, any, any> = TypedWorkflow>(id: string, options: WaitOptions = {}): Promise<WorkflowOutput<W>> {
    return outputOfRun<WorkflowOutput<W>>(await this.waitForRun(id, options));
  }

  /** Starts many runs; each item succeeds or fails on its own. Sent in chunks of 1000. */
  async createRuns(requests: CreateRunRequest[]): Promise<BatchCreateResult> {
    if (!Array.isArray(requests)) throw new TypeError('createRuns expects an array of run requests');
    const out: BatchCreateResult = { created: 0, failed: 0, items: [] };
    let start = 0;
    do {
      const page = await this.request<BatchCreateResult>('POST', '/api/runs/batch', { runs: requests.slice(start, start + MAX_BATCH) });
      out.created += page.created;
      out.failed += page.failed;
      for (const item of page.items) out.items.push({ ...item, index: item.index + start });
      start += MAX_BATCH;
    } while (start < requests.length);
    return out;
  }

  getRun(id: string): Promise<RunWithSteps> {
    return this.request('GET', `/api/runs/${encodeURIComponent(id)}`);
  }

  /** One page, newest first; pass `nextCursor` back as `cursor` for the next. */
  listRuns(query: ListRunsQuery = {}): Promise<Page<RunListItem>> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== null) params.set(key, String(value));
    const qs = params.toString();
    return this.request('GET', `/api/runs${qs ? `?${qs}` : ''}`);
  }

  getAudit(id: string): Promise<{ items: AuditEventView[] }> {
    return this.request('GET', `/api/runs/${encodeURIComponent(id)}/audit`);
  }

  cancelRun(id: string): Promise<RunView> {
    return this.request('POST', `/api/runs/${encodeURIComponent(id)}/cancel`);
  }

  /** Resumes a failed or cancelled run. */
  retryRun(id: string): Promise<RunView> {
    return this.request('POST', `/api/runs/${encodeURIComponent(id)}/retry`);
  }

  /** Sends a signal to a run (201 with the signal): the first of a name ends the steps waiting for it with `payload`. */
  signal(id: string, name: string, payload?: unknown): Promise<SignalView> {
    return this.request('POST', `/api/runs/${encodeURIComponent(id)}/signals/${encodeURIComponent(name)}`, payload === undefined ? {} : { payload });
  }

  /** Starts a new run of the same workflow with the same input, workspace and priority (201 with the new run). */
  rerunRun(id: string): Promise<RunView> {
    return this.request('POST', `/api/runs/${encodeURIComponent(id)}/rerun`);
  }

  /** Polls until the run is terminal; throws `ClientWaitTimeoutError` past `timeoutMs` (default 60 000). */
  waitForRun(id: string, options: WaitOptions = {}): Promise<RunWithSteps> {
    return pollRun(() => this.getRun(id), options, { pollMs: 100, maxPollMs: 1000 });
  }

  /** The registered workflows, as the API answers them: `{items}` (not a bare array). */
  listWorkflows(): Promise<{ items: WorkflowView[] }> {
    return this.request('GET', '/api/workflows');
  }

  /** The registered workers, as the API answers them: `{items}` (not a bare array). */
  listWorkers(): Promise<{ items: WorkerView[] }> {
    return this.request('GET', '/api/workers');
  }

  /** Creates a cron schedule (201); `already_exists` (409) for a taken name, `invalid_schedule` or `unknown_workflow` (422). */
  createSchedule(definition: ScheduleDefinition): Promise<ScheduleView> {
    return this.request('POST', '/api/schedules', definition);
  }

  /** Every schedule, as the API answers them: `{items}`. */
  listSchedules(): Promise<{ items: ScheduleView[] }> {
    return this.request('GET', '/api/schedules');
  }

  /** One schedule with its `nextFireAt`. */
  getSchedule(name: string): Promise<ScheduleView> {
    return this.request('GET', `/api/schedules/${encodeURIComponent(name)}`);
  }

  deleteSchedule(name: string): Promise<ScheduleView> {
    return this.request('DELETE', `/api/schedules/${encodeURIComponent(name)}`);
  }

  pauseSchedule(name: string): Promise<ScheduleView> {
    return this.request('POST', `/api/schedules/${encodeURIComponent(name)}/pause`);
  }

  resumeSchedule(name: string): Promise<ScheduleView> {
    return this.request('POST', `/api/schedules/${encodeURIComponent(name)}/resume`);
  }

  /** A page of a step's `ctx.log` lines, oldest first (`limit` ≤ 1000, default 100; `cursor` from `nextCursor`). */
  getStepLogs(runId: string, stepName: string, query: { limit?: number; cursor?: string } = {}): Promise<StepLogPage> {
    const params = new URLSearchParams();
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.cursor !== undefined) params.set('cursor', query.cursor);
    const qs = params.toString();
    return this.request('GET', `/api/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(stepName)}/logs${qs ? `?${qs}` : ''}`);
  }

  /**
   * A page of a map step's elements by index (`status`: one step status or several
   * comma-separated; `limit` ≤ 1000, default 100; `cursor` from `nextCursor`).
   */
  listMapElements(runId: string, stepName: string, query: { status?: string; limit?: number; cursor?: string } = {}): Promise<MapElementPage> {
    const params = new URLSearchParams();
    if (query.status !== undefined) params.set('status', query.status);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.cursor !== undefined) params.set('cursor', query.cursor);
    const qs = params.toString();
    return this.request('GET', `/api/runs/${encodeURIComponent(runId)}/steps/${encodeURIComponent(stepName)}/elements${qs ? `?${qs}` : ''}`);
  }

  /**
   * One API call. A mutating call always sends a JSON body (`{}` when there is
   * nothing to send) with `Content-Type: application/json`, and the key as Bearer.
   */
  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    // A bodiless POST still says JSON: the server refuses other types on state changes a browser could send.
    if (method !== 'GET' && body === undefined) body = {};
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (body === undefined && method !== 'GET' && method !== 'HEAD') body = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const name = (error as { name?: string })?.name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new DroverApiError(0, 'timeout', `${method} ${path}: no answer within ${timeoutMs} ms`, undefined, error);
      }
      const cause = (error as { cause?: { code?: string } })?.cause?.code;
      throw new DroverApiError(0, 'unreachable', `${method} ${path}: cannot reach ${this.baseUrl}${cause ? ` (${cause})` : ''}`, undefined, error);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const err = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
      throw new DroverApiError(
        response.status,
        typeof err?.code === 'string' ? err.code : `http_${response.status}`,
        typeof err?.message === 'string' ? err.message : `${method} ${path} answered ${response.status} ${response.statusText}`,
        err?.details,
      );
    }
    if (parsed === undefined) throw new DroverApiError(response.status, 'invalid_response', `${method} ${path}: the answer is not JSON`);
    return parsed as T;
  }
}
