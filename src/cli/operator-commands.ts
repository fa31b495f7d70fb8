import { type Command, InvalidArgumentError, Option } from 'commander';
import * as os from 'node:os';
import type { Drover } from '../drover';
import { isUuid } from '../json';
import { RUN_STATUSES, type RunStatus } from '../states';
import type { RunView } from '../types';
import { auditTable, errorText, json, runDetail, runLine, runsTable, workersTable, workflowsTable } from './output';

/** Where the CLI writes (tests and embedders may capture it). */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** What the operator's commands need from the program that hosts them. */
export interface OperatorDeps {
  io: Io;
  /**
   * Wraps an action that works on the CLI's database (embedded or
   * `DATABASE_URL`) through a Drover: configuration, one-line errors, exit codes.
   */
  onDatabase<A extends unknown[]>(body: (drover: Drover, ...args: A) => Promise<number>): (...args: A) => Promise<void>;
}

/** Exit code of `runs wait` when the wait timed out (as GNU `timeout` does). */
export const WAIT_TIMEOUT_EXIT = 124;

/**
 * Who the CLI's actions are audited as: `cli:<OS user>` (the login name of the
 * process), or `cli` when the system cannot tell.
 */
export function cliActor(): string {
  try {
    const user = os.userInfo().username;
    return user ? `cli:${user}` : 'cli';
  } catch {
    return 'cli';
  }
}

/** A commander argument parser: a run id is a UUID. */
export const runId = (value: string): string => {
  if (!isUuid(value)) throw new InvalidArgumentError(`"${value}" is not a run id (a UUID such as 3f0c…-…).`);
  return value;
};

/** A commander parser of a whole number in [min, max]. */
export const wholeNumber = (min: number, max: number) => (value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}.`);
  }
  return Number(value);
};

/** A commander parser of a JSON object (`--input`). */
export const jsonObject = (value: string): Record<string, unknown> => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`is not valid JSON (${(error as Error).message}).`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object.');
  return parsed as Record<string, unknown>;
};

/** A commander parser of any JSON value (`--payload`). */
export const jsonValue = (value: string): unknown => {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`is not valid JSON (${(error as Error).message}).`);
  }
};

const jsonOption = () => new Option('--json', 'print JSON');

/** Adds `runs create|get|list|cancel|resume|signal|audit|wait`, `workflows list` and `workers list`. */
export function addOperatorCommands(program: Command, deps: OperatorDeps): void {
  const { io, onDatabase } = deps;
  const actor = cliActor();

  const runs = program.command('runs').description(`start, read, cancel, resume and wait for runs (actions are audited as ${actor})`);
  runs.command('create')
    .description('starts a run of WORKFLOW, or finds the run an idempotency key already made')
    .argument('<workflow>', 'the workflow name')
    .addOption(new Option('-i, --input <json>', 'the run input, a JSON object').argParser(jsonObject))
    .option('-k, --idempotency-key <key>', 'returns the existing run when this key was seen')
    .option('-w, --workspace <name>', 'the workspace (default "default")')
    .addOption(jsonOption())
    .action(onDatabase(async (drover, workflow: string, opts: { input?: Record<string, unknown>; idempotencyKey?: string; workspace?: string; json?: boolean }) => {
        const { run, created } = await drover.submitRun({
          workflow, input: opts.input, idempotencyKey: opts.idempotencyKey, workspace: opts.workspace,
        }, { actor });
        if (opts.json) io.out(json({ ...run, created }));
        else io.out(created ? runLine('created run', run) : `${runLine(`found existing run for idempotency key "${run.idempotencyKey}":`, run)}; nothing created`);
        return 0;
      }));

  runs.command('get')
    .description('prints a run with its steps')
    .argument('<id>', 'the run id', runId)
    .addOption(jsonOption())
    .action(onDatabase(async (drover, id: string, opts: { json?: boolean }) => {
      const run = await drover.getRun(id);
      io.out(opts.json ? json(run) : runDetail(run));
      return 0;
    }));

  runs.command('list')
    .description('lists runs, newest first, one page at a time')
    .addOption(new Option('-s, --status <status>', 'only runs in this status').choices(RUN_STATUSES))
    .option('--workflow <name>', 'only runs of this workflow')
    .option('--workspace <name>', 'only runs of this workspace')
    .addOption(new Option('-l, --limit <n>', 'runs per page (1 to 100)').argParser(wholeNumber(1, 100)).default(20))
    .option('-c, --cursor <cursor>', 'the page after this one (the nextCursor of the previous page)')
    .addOption(jsonOption())
    .action(onDatabase(async (drover, opts: { status?: RunStatus; workflow?: string; workspace?: string; limit: number; cursor?: string; json?: boolean }) => {
        const page = await drover.listRuns({ status: opts.status, workflow: opts.workflow, workspace: opts.workspace, limit: opts.limit, cursor: opts.cursor });
        if (opts.json) {
          io.out(json(page));
        } else {
          io.out(page.items.length ? runsTable(page.items) : 'no runs');
          if (page.nextCursor) io.out(`more: drover runs list --cursor ${page.nextCursor}${opts.limit !== 20 ? ` --limit ${opts.limit}` : ''}${opts.status ? ` --status ${opts.status}` : ''}${opts.workflow ? ` --workflow ${opts.workflow}` : ''}${opts.workspace ? ` --workspace ${opts.workspace}` : ''}`);
        }
        return 0;
      }));

  const action1 = (name: string, description: string, past: string, act: (drover: Drover, id: string) => Promise<RunView>) => runs.command(name)
    .description(description)
    .argument('<id>', 'the run id', runId)
    .addOption(jsonOption())
    .action(onDatabase(async (drover, id: string, opts: { json?: boolean }) => {
      const run = await act(drover, id);
      io.out(opts.json ? json(run) : runLine(`${past} run`, run));
      return 0;
    }));
  action1('cancel', 'cancels a pending or running run (its queued and running steps)', 'cancelled', (drover, id) => drover.cancelRun(id, { actor }));
  action1('resume', 'resumes a failed or cancelled run from where it stopped (succeeded steps are kept)', 'resumed', (drover, id) => drover.retryRun(id, { actor }));

  runs.command('signal')
    .description('sends signal NAME to a run: the first of a name ends the steps waiting for it (waitFor) with its payload')
    .argument('<id>', 'the run id', runId)
    .argument('<name>', 'the signal name')
    .addOption(new Option('-p, --payload <json>', 'the payload, any JSON value (default null)').argParser(jsonValue))
    .addOption(jsonOption())
    .action(onDatabase(async (drover, id: string, name: string, opts: { payload?: unknown; json?: boolean }) => {
      const sent = await drover.signal(id, name, opts.payload, { actor });
      if (opts.json) io.out(json(sent));
      else {
        const ended = sent.delivered.length ? `; ended ${sent.delivered.join(', ')}` : sent.first ? '; kept until a step waits for it' : '; an earlier one of that name was first';
        io.out(`sent signal "${name}" to run ${id}${ended}`);
      }
      return 0;
    }));

  runs.command('audit')
    .description('prints the audit trail of a run, oldest first')
    .argument('<id>', 'the run id', runId)
    .addOption(jsonOption())
    .action(onDatabase(async (drover, id: string, opts: { json?: boolean }) => {
      const audit = await drover.getAudit(id);
      io.out(opts.json ? json(audit) : auditTable(audit.items));
      return 0;
    }));

  runs.command('wait')
    .description(`waits until a run finishes; exit code 0 when it succeeded, 1 when it failed or was cancelled, ${WAIT_TIMEOUT_EXIT} when the wait timed out`)
    .argument('<id>', 'the run id', runId)
    .addOption(new Option('-t, --timeout-ms <n>', 'give up after this many milliseconds').argParser(wholeNumber(0, 7 * 24 * 3600 * 1000)).default(60_000))
    .addOption(jsonOption())
    .action(onDatabase(async (drover, id: string, opts: { timeoutMs: number; json?: boolean }) => {
      const { WaitTimeoutError } = await import('../client/wait');
      let run: RunView;
      try {
        run = await drover.waitForRun(id, { timeoutMs: opts.timeoutMs });
      } catch (error) {
        if (!(error instanceof WaitTimeoutError)) throw error;
        if (opts.json) io.out(json(error.run));
        io.err(`drover: run ${id} is still ${error.run.status} after ${opts.timeoutMs} ms: the wait timed out`);
        return WAIT_TIMEOUT_EXIT;
      }
      if (opts.json) io.out(json(run));
      else if (run.status === 'succeeded') io.out(runLine('succeeded: run', run));
      if (run.status === 'failed') io.err(`drover: run ${id} failed${run.error !== null ? `: ${errorText(run.error)}` : ''}`);
      if (run.status === 'cancelled') io.err(`drover: run ${id} was cancelled`);
      return run.status === 'succeeded' ? 0 : 1;
    }));

  program.command('workflows').description('the registered workflows')
    .command('list')
    .description('lists the current version of each workflow')
    .addOption(jsonOption())
    .action(onDatabase(async (drover, opts: { json?: boolean }) => {
      const items = await drover.listWorkflows();
      io.out(opts.json ? json({ items }) : items.length ? workflowsTable(items) : 'no workflows registered (a worker registers its module\'s at start)');
      return 0;
    }));

  program.command('workers').description('the registered workers')
    .command('list')
    .description('lists the workers, with their queues, concurrency and last heartbeat')
    .addOption(jsonOption())
    .action(onDatabase(async (drover, opts: { json?: boolean }) => {
      const items = await drover.listWorkers();
      io.out(opts.json ? json({ items }) : items.length ? workersTable(items) : 'no workers registered');
      return 0;
    }));
}
