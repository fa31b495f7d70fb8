import 'reflect-metadata';

export { Drover, WaitTimeoutError, type DroverOptions } from './drover';
export { DroverWorker, createWorker, type WorkerOptions } from './worker';
export { defineProcessor, defineWorkflow, resolveWorkflow, resolveModule } from './definitions';
export { ApiError, ConfigError, DefinitionError, DroverError, NonRetryableError, StepTimeoutError } from './errors';
export { loadConfig, type DroverConfig } from './config';
export { migrate } from './db/data-source';
export type { ReconcilerOptions, ReconcileReport } from './reconciler';
export type { RunStatus, StepStatus, WorkerStatus } from './states';
export * from './types';
