/**
 * The HTTP client entry (`drover/client`): the producer API over HTTP, with
 * nothing of the engine (no BullMQ, TypeORM or pg is loaded).
 */
export { DroverClient, DroverApiError, ClientWaitTimeoutError, type DroverClientOptions } from './client';
export { RunFailedError } from './result';
export type { WaitOptions } from './wait';
export type {
  Json, JsonObject, RunHandle, StartArgs, StartOptions, TypedWorkflow, WorkflowInput, WorkflowName, WorkflowOutput,
} from '../workflows/typed';
export type {
  AuditEventView, BatchCreateResult, CreateRunRequest, ListRunsQuery, Page, RunError, RunListItem, RunView, RunWithSteps, StepView, WorkerView, WorkflowView,
} from '../types';
export type { RunStatus, StepStatus } from '../states';
export type { ScheduleDefinition, OverlapPolicy, CatchUpPolicy } from '../schedules/schedule-definition';
export type { ScheduleView } from '../schedules/schedule-store';
export type { StepLogLine, StepLogPage } from '../steps/step-logs';
export type { MapElementView, MapElementPage } from '../waits/map-elements';
