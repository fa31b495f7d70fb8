import { type Command, Option } from 'commander';
import type { RetentionReport } from '../maintenance/retention';
import { CATCH_UP_POLICIES, OVERLAP_POLICIES } from '../schedules/schedule-definition';
import type { ScheduleView } from '../schedules/schedule-store';
import { cliActor, jsonObject, type OperatorDeps } from './operator-commands';
import { json } from './output';

const jsonOption = () => new Option('--json', 'print JSON');

function scheduleLine(verb: string, s: ScheduleView): string {
  const next = s.paused ? 'paused' : `next ${s.nextFireAt}`;
  return `${verb} schedule ${s.name}: ${s.workflow} at "${s.cron}" (${s.timezone}), ${next}`;
}

function schedulesTable(items: ScheduleView[]): string {
  const rows = [['NAME', 'WORKFLOW', 'CRON', 'TIMEZONE', 'STATE', 'NEXT FIRE', 'LAST FIRED', 'OVERLAP', 'CATCH-UP']];
  for (const s of items) {
    rows.push([s.name, s.workflow, s.cron, s.timezone, s.paused ? 'paused' : 'active', s.nextFireAt ?? '-', s.lastFireAt ?? '-', s.overlap, s.catchUp]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** What `drover prune` printed: each kind of row deleted. */
export function pruneText(report: RetentionReport, retentionDays: number): string {
  if (!report.ran) return 'another process is running retention right now; nothing deleted by this one';
  if (retentionDays === 0) return `DROVER_RETENTION_DAYS=0 keeps every run; deleted ${report.workers} stopped worker(s) older than a day`;
  const parts = [`${report.runs} run(s)`, `${report.steps} step(s)`, `${report.stepLogs} step log line(s)`,
    `${report.auditEvents} audit event(s) in ${report.partitionsDropped.length} monthly partition(s)${report.partitionsDropped.length ? ` (${report.partitionsDropped.join(', ')})` : ''}`,
    `${report.workers} stopped worker(s)`];
  return `deleted finished history older than ${retentionDays} day(s): ${parts.join(', ')}`;
}

/** Adds `schedules list|get|create|delete|pause|resume` and `prune`. */
export function addScheduleCommands(program: Command, deps: OperatorDeps & { retentionDays: () => number }): void {
  const { io, onDatabase } = deps;
  const actor = cliActor();
  const schedules = program.command('schedules').description(`cron schedules: each tick starts one run (changes are audited as ${actor})`);

  schedules.command('list').description('lists the schedules with their next fire times').addOption(jsonOption())
    .action(onDatabase(async (drover, opts: { json?: boolean }) => {
      const items = await drover.listSchedules();
      io.out(opts.json ? json({ items }) : items.length ? schedulesTable(items) : 'no schedules');
      return 0;
    }));

  schedules.command('get').description('prints one schedule').argument('<name>').addOption(jsonOption())
    .action(onDatabase(async (drover, name: string, opts: { json?: boolean }) => {
      const s = await drover.getSchedule(name);
      io.out(opts.json ? json(s) : scheduleLine('', s).trimStart());
      return 0;
    }));

  schedules.command('create')
    .description('creates a schedule: every tick of CRON starts a run of the workflow')
    .argument('<name>', 'the schedule name ([a-z0-9][a-z0-9._-]{0,63})')
    .requiredOption('--workflow <name>', 'the workflow to run')
    .requiredOption('--cron <expr>', 'five fields (minute hour day month weekday), or six with seconds first; quote it')
    .option('--timezone <zone>', 'IANA time zone of the cron fields (default UTC)')
    .addOption(new Option('-i, --input <json>', 'the input of every run, a JSON object').argParser(jsonObject))
    .option('-w, --workspace <name>', 'the workspace of its runs (default "default")')
    .addOption(new Option('--overlap <policy>', 'while the previous run is open (default skip)').choices(OVERLAP_POLICIES))
    .addOption(new Option('--catch-up <policy>', 'ticks missed during downtime (default latest)').choices(CATCH_UP_POLICIES))
    .addOption(jsonOption())
    .action(onDatabase(async (drover, name: string, opts: { workflow: string; cron: string; timezone?: string; input?: Record<string, unknown>; workspace?: string; overlap?: string; catchUp?: string; json?: boolean }) => {
      const s = await drover.createSchedule({
        name, workflow: opts.workflow, cron: opts.cron, timezone: opts.timezone, input: opts.input, workspace: opts.workspace, overlap: opts.overlap, catchUp: opts.catchUp,
      }, { actor });
      io.out(opts.json ? json(s) : scheduleLine('created', s));
      return 0;
    }));

  const action1 = (command: string, description: string, verb: string, act: (drover: Parameters<Parameters<typeof onDatabase>[0]>[0], name: string) => Promise<ScheduleView>) =>
    schedules.command(command).description(description).argument('<name>').addOption(jsonOption())
      .action(onDatabase(async (drover, name: string, opts: { json?: boolean }) => {
        const s = await act(drover, name);
        io.out(opts.json ? json(s) : scheduleLine(verb, s));
        return 0;
      }));
  action1('delete', 'deletes a schedule (its runs stay)', 'deleted', (drover, name) => drover.deleteSchedule(name, { actor }));
  action1('pause', 'pauses a schedule: no tick fires until it is resumed', 'paused', (drover, name) => drover.pauseSchedule(name, { actor }));
  action1('resume', 'resumes a schedule from its next tick (ticks missed while paused do not fire)', 'resumed', (drover, name) => drover.resumeSchedule(name, { actor }));

  program.command('prune')
    .description('runs retention now: deletes finished runs older than DROVER_RETENTION_DAYS with their steps, logs and old audit partitions')
    .addOption(jsonOption())
    .action(onDatabase(async (drover, opts: { json?: boolean }) => {
      const report = await drover.prune();
      io.out(opts.json ? json({ retentionDays: deps.retentionDays(), ...report }) : pruneText(report, deps.retentionDays()));
      return report.ran ? 0 : 1;
    }));
}
