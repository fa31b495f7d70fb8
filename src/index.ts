import 'reflect-metadata';

export { Drover, WaitTimeoutError, type DroverOptions } from './drover';
export { DroverWorker, createWorker, type WorkerOptions } from './worker/worker';
export { defineProcessor, defineWorkflow, resolveWorkflow, resolveModule } from './workflows/definitions';
export {
  CommitUnknownError, ConfigError, InvalidInputError, DefinitionError, DroverError, InvalidRequestError, InvalidStateError, NonRetryableError,
  NotAMapStepError, NotFoundError, PayloadTooLargeError, StepTimeoutError, UnknownWorkflowError, type RequestError,
} from './errors';
export { loadConfig, type DroverConfig } from './config';
export { Tracing, type TracingOptions } from './telemetry/tracing';
export { migrate } from './db/data-source';
export type { ReconcilerOptions, ReconcileReport } from './maintenance/reconciler';
export type { RunStatus, StepStatus, WorkerStatus } from './states';
export * from './types';
export { DroverClient, DroverApiError, ClientWaitTimeoutError, type DroverClientOptions } from './client/client';
export { createApp, type AppOptions, type DroverApp } from './http/app';
export { startServer, type ServerOptions, type DroverServer } from './http/server';
export { ApiKeyStore, type ApiKeyView, type CreatedApiKey } from './auth/api-keys';
export { SessionStore, type SessionOptions, type CreatedSession, type SessionIdentity } from './auth/sessions';
export { authenticate, pageAuth, type Principal, type AuthStores } from './http/auth';
export { loadUserModule } from './workflows/module-loader';
export {
  workflow, WorkflowBuilder, isWorkflowBuilder, type InputSchema, type ParsedInput, type RawInput, type StepRef, type StepContext,
  type StepOutput, type TypedStepOptions, type TypedWorkflowOptions, type ParentsOf, type OutputOfRef, type SinkOutputs,
  type JoinedParentsOf, type SettledParent,
} from './workflows/builder';
export type { Json, JsonObject, TypedWorkflow, WorkflowInput, WorkflowOutput, WorkflowName, RunHandle, StartOptions, StartArgs } from './workflows/typed';
export { RunFailedError } from './client/result';
export {
  InvalidScheduleError, ScheduleExistsError, OVERLAP_POLICIES, CATCH_UP_POLICIES, MAX_CATCH_UP,
  type ScheduleDefinition, type OverlapPolicy, type CatchUpPolicy,
} from './schedules/schedule-definition';
export type { ScheduleView } from './schedules/schedule-store';
export type { StepLogLine, StepLogPage, StepLogQuery } from './steps/step-logs';
export type { MapElementView, MapElementPage, MapElementQuery } from './waits/map-elements';
export { Maintenance, type MaintenanceOptions } from './maintenance/maintenance';
export type { RetentionOptions, RetentionReport } from './maintenance/retention';
