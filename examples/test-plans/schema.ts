/** The test-plans example's own tables (schema `example_plans`, migrations table `example_plans_migrations`), beside drover's. */
import { EntitySchema, type MigrationInterface, type QueryRunner } from 'typeorm';
import type { Check } from './checks';

/** A test plan: a name and its checks, in the order they are reported. */
export interface Plan { id: string; name: string; checks: Check[]; createdAt: Date }
export const PlanEntity = new EntitySchema<Plan>({
  name: 'TestPlan', tableName: 'plans', schema: 'example_plans',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    name: { type: 'text', unique: true },
    checks: { type: 'jsonb' },
    createdAt: { name: 'created_at', type: 'timestamptz', createDate: true },
  },
});

/** An execution's state: matches the column's check constraint. */
export type ExecutionStatus = 'scheduled' | 'running' | 'passed' | 'failed';

/** One execution of a plan, started at `scheduledFor` by a drover run (`runId`). */
export interface Execution {
  id: string; planId: string; status: ExecutionStatus; trigger: string; scheduledFor: Date;
  startedAt: Date | null; finishedAt: Date | null; runId: string | null;
}
export const ExecutionEntity = new EntitySchema<Execution>({
  name: 'TestPlanExecution', tableName: 'executions', schema: 'example_plans',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    planId: { name: 'plan_id', type: 'uuid' },
    status: { type: 'text' },
    trigger: { type: 'text' },
    scheduledFor: { name: 'scheduled_for', type: 'timestamptz' },
    startedAt: { name: 'started_at', type: 'timestamptz', nullable: true },
    finishedAt: { name: 'finished_at', type: 'timestamptz', nullable: true },
    runId: { name: 'run_id', type: 'uuid', nullable: true },
  },
});

/** The result of one check of an execution, written in the check step's transaction. */
export interface CheckResult { id: string; executionId: string; position: number; name: string; kind: string; ok: boolean; attempts: number; detail: string }
export const CheckResultEntity = new EntitySchema<CheckResult>({
  name: 'TestPlanCheckResult', tableName: 'results', schema: 'example_plans',
  columns: {
    id: { type: 'uuid', primary: true, generated: 'uuid' },
    executionId: { name: 'execution_id', type: 'uuid' },
    position: { type: 'int' },
    name: { type: 'text' },
    kind: { type: 'text' },
    ok: { type: 'boolean' },
    attempts: { type: 'int' },
    detail: { type: 'text' },
  },
});

export class CreatePlanTables1766600000000 implements MigrationInterface {
  name = 'CreatePlanTables1766600000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS example_plans`);
    await q.query(`CREATE TABLE example_plans.plans (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
      checks jsonb NOT NULL CHECK (jsonb_typeof(checks) = 'array'), created_at timestamptz NOT NULL DEFAULT now())`);
    await q.query(`CREATE TABLE example_plans.executions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), plan_id uuid NOT NULL REFERENCES example_plans.plans ON DELETE CASCADE,
      status text NOT NULL CHECK (status IN ('scheduled', 'running', 'passed', 'failed')), trigger text NOT NULL,
      scheduled_for timestamptz NOT NULL, started_at timestamptz, finished_at timestamptz, run_id uuid UNIQUE)`);
    await q.query(`CREATE INDEX ON example_plans.executions (plan_id, scheduled_for)`);
    await q.query(`CREATE TABLE example_plans.results (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), execution_id uuid NOT NULL REFERENCES example_plans.executions ON DELETE CASCADE,
      position int NOT NULL, name text NOT NULL, kind text NOT NULL, ok boolean NOT NULL, attempts int NOT NULL, detail text NOT NULL, UNIQUE (execution_id, position))`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA example_plans CASCADE`);
  }
}

export const planEntities = [PlanEntity, ExecutionEntity, CheckResultEntity];
export const planMigrations = [CreatePlanTables1766600000000];
export const PLAN_MIGRATIONS_TABLE = 'example_plans_migrations';
