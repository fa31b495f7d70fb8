import { InitialSchema1763900000000 } from './1763900000000-initial-schema';
import { SinkOutputs1764000000000 } from './1764000000000-sink-outputs';
import { UnfinishedIndexes1764100000000 } from './1764100000000-unfinished-indexes';
import { AttemptOwner1764300000000 } from './1764300000000-attempt-owner';
import { DropRunGeneration1764600000000 } from './1764600000000-drop-run-generation';
import { Sessions1765100000000 } from './1765100000000-sessions';
import { QueueAuditEvents1765300000000 } from './1765300000000-queue-audit-events';
import { WorkflowInputSchema1765500000000 } from './1765500000000-workflow-input-schema';
import { DashboardNotify1765200000000 } from './1765200000000-dashboard-notify';
import { KeyScopes1765600000000 } from './1765600000000-key-scopes';
import { RunsTenantIndex1765700000000 } from './1765700000000-runs-tenant-index';
import { Waits1766100000000 } from './1766100000000-waits';
import { FlowControl1766200000000 } from './1766200000000-flow-control';
import { SchedulesRetention1766300000000 } from './1766300000000-schedules-retention';
import { RunErrorStep1766700000000 } from './1766700000000-run-error-step';

/** Every migration, oldest first (imported, not globbed, so ts and built js agree). */
export const MIGRATIONS = [
  InitialSchema1763900000000, SinkOutputs1764000000000, UnfinishedIndexes1764100000000, AttemptOwner1764300000000,
  DropRunGeneration1764600000000, Sessions1765100000000, DashboardNotify1765200000000, QueueAuditEvents1765300000000,
  WorkflowInputSchema1765500000000, KeyScopes1765600000000, RunsTenantIndex1765700000000,
  Waits1766100000000,
  FlowControl1766200000000,
  SchedulesRetention1766300000000,
  RunErrorStep1766700000000,
];
