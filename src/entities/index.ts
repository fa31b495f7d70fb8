import { ApiKeyEntity } from './api-key.entity';
import { AuditEventEntity } from './audit-event.entity';
import { RunEntity } from './run.entity';
import { StepEntity } from './step.entity';
import { WorkerEntity } from './worker.entity';
import { WorkflowEntity } from './workflow.entity';

export { ApiKeyEntity, AuditEventEntity, RunEntity, StepEntity, WorkerEntity, WorkflowEntity };

/** Every entity, for the DataSource. */
export const ENTITIES = [RunEntity, StepEntity, AuditEventEntity, WorkerEntity, WorkflowEntity, ApiKeyEntity];
