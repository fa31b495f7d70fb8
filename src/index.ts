import 'reflect-metadata';

export { Drover, WaitTimeoutError, type DroverOptions } from './drover';
export { DroverWorker, createWorker, type WorkerOptions } from './worker/worker';
export { defineProcessor, defineWorkflow, resolveWorkflow, resolveModule } from './workflows/definitions';
export {
  CommitUnknownError, ConfigError, DefinitionError, DroverError, InvalidRequestError, InvalidStateError, NonRetryableError,
  NotFoundError, PayloadTooLargeError, StepTimeoutError, UnknownWorkflowError, type RequestError,
} from './errors';
export { loadConfig, type DroverConfig } from './config';
export { migrate } from './db/data-source';
export type { ReconcilerOptions, ReconcileReport } from './maintenance/reconciler';
export type { RunStatus, StepStatus, WorkerStatus } from './states';
export * from './types';
export { DroverClient, DroverApiError, ClientWaitTimeoutError, type DroverClientOptions } from './client/client';
export { createApp, type AppOptions, type DroverApp } from './http/app';
export { startServer, type ServerOptions, type DroverServer } from './http/server';
export { ApiKeyStore, type ApiKeyView, type CreatedApiKey } from './auth/api-keys';
export { loadUserModule } from './workflows/module-loader';
