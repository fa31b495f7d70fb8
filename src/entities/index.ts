import { ApiKeyEntity } from './api-key.entity';
import { AuditEventEntity } from './audit-event.entity';
import { RunEntity } from './run.entity';
import { ScheduleEntity } from './schedule.entity';
import { SessionEntity } from './session.entity';
import { SignalEntity } from './signal.entity';
import { StepLogEntity } from './step-log.entity';
import { StepEntity } from './step.entity';
import { WorkerEntity } from './worker.entity';
import { WorkflowEntity } from './workflow.entity';

export { ApiKeyEntity, AuditEventEntity, RunEntity, ScheduleEntity, SessionEntity, SignalEntity, StepEntity, StepLogEntity, WorkerEntity, WorkflowEntity };

/** Every entity, for the DataSource. */
export const ENTITIES = [RunEntity, StepEntity, AuditEventEntity, WorkerEntity, WorkflowEntity, ApiKeyEntity, SessionEntity, SignalEntity, ScheduleEntity, StepLogEntity];
