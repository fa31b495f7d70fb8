import * as fs from 'node:fs';
import * as os from 'node:os';

/** One row of the results table. */
export interface ScenarioRow {
  scenario: string;
  fault: string;
  runsAccepted: number;
  steps: number;
  executions: number;
  faults: number;
  runsLost: number;
  doubleCompletions: number;
  /** `deadlock detected` lines in the Postgres server log during the scenario. */
  deadlocks: number;
  extraExecutions: number;
  /** Worst time from the end of a fault until a new run succeeded (ms). */
  recoveryMs: number;
  /** Time from the end of the load until every run was terminal (ms). */
  settleMs: number;
  peakWorkerRssMb: number;
  peakApiRssMb: number;
  violations: string[];
  passed: boolean;
}

const fmtMs = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(1)} s` : 'n/a');

/** The machine, for the report. */
export function machine(): string {
  const cpu = os.cpus()[0]?.model?.trim() ?? 'unknown CPU';
  return `${os.type()} ${os.release()}, ${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

/** The results as a Markdown table. */
export function table(rows: ScenarioRow[]): string {
  const head = '| scenario | runs accepted | steps | processor executions | faults injected | runs lost | steps completed twice | deadlocks | executions beyond one | time to recover | settle after load | peak RSS per worker | peak RSS API | result |';
  const sep = '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|';
  const lines = rows.map((r) => `| ${r.scenario} | ${r.runsAccepted} | ${r.steps} | ${r.executions} | ${r.faults} | ${r.runsLost} | ${r.doubleCompletions} | ${r.deadlocks} | ${r.extraExecutions} | ${fmtMs(r.recoveryMs)} | ${fmtMs(r.settleMs)} | ${r.peakWorkerRssMb} MB | ${r.peakApiRssMb} MB | ${r.passed ? 'pass' : `**FAIL** (${r.violations.length})`} |`);
  return [head, sep, ...lines].join('\n');
}

const INTRO = `# drover — reliability

\`npm run chaos\` starts Redis, Postgres, \`drover server\` and worker processes as real OS
processes on loopback, puts a steady mixed load of runs on them (chains, diamonds,
fan-out/fan-in, flaky steps, steps that fail for good, slow steps, cancels and resumes
mid-flight, single-attempt steps, joins whose branches fail and succeed at the same
moment, cancels racing successes; producers retry with idempotency keys), injects one
kind of fault per scenario, lets the system settle, and checks the invariants from
Postgres, the queue and the Postgres server log (README.md, section "Reliability", says
what each check and column means). The sections between the \`chaos:\` markers are
written by the suite itself.
`;

/** Replaces (or appends) the section `name` of RELIABILITY.md. */
export function writeSection(file: string, name: string, body: string): void {
  const start = `<!-- chaos:${name}:start -->`;
  const end = `<!-- chaos:${name}:end -->`;
  let text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : INTRO;
  const block = `${start}\n${body.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, text);
}
