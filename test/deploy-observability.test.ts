import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'yaml';
import { FLOW_KEYS_AT_LIMIT_METRIC, Metrics } from '../src/telemetry/metrics';

/**
 * The alert rules and the Grafana dashboard in deploy/: checked by Debian's
 * `promtool` (package `prometheus`; .ci/run installs it), and every drover
 * metric they use must be one drover serves.
 */

const DEPLOY = path.join(__dirname, '..', 'deploy');
const RULES = path.join(DEPLOY, 'prometheus', 'drover-alerts.yaml');
const RULE_TESTS = path.join(DEPLOY, 'prometheus', 'drover-alerts.test.yaml');
const DASHBOARD = path.join(DEPLOY, 'grafana', 'drover-dashboard.json');

function promtool(...args: string[]): { code: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error) throw new Error(`promtool could not run (${result.error.message}): install it with apt-get install -y prometheus`);
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The drover_* metric names an expression reads (histogram series named by their metric). */
function metricsOf(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bdrover_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')))];
}

/** Every expression of the dashboard's panels, with Grafana's variables replaced by what PromQL accepts. */
function dashboardExprs(): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  return dashboard.panels.filter((p: any) => p.type !== 'row').flatMap((p: any) => p.targets.map((t: any) => ({
    panel: p.title,
    expr: String(t.expr).replaceAll('$__rate_interval', '5m').replaceAll('$queue', '.*'),
  })));
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-rules-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the Prometheus alert rules', () => {
  test('promtool checks them', () => {
    const { code, output } = promtool('check', 'rules', RULES);
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('SUCCESS: 7 rules found') });
  });

  test("promtool's unit tests of them pass (each alert fires when it should and not before)", () => {
    const { code, output } = promtool('test', 'rules', RULE_TESTS);
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('SUCCESS') });
  });

  test('a broken rule fails the check', () => {
    const broken = path.join(tmp, 'broken.yaml');
    fs.writeFileSync(broken, fs.readFileSync(RULES, 'utf8').replace('max(drover_runs_stuck) > 0', 'max(drover_runs_stuck > 0'));
    const { code, output } = promtool('check', 'rules', broken);
    expect(code).not.toBe(0);
    expect(output).toMatch(/parse error|unclosed/i);
  });

  test('the alerts cover stuck runs, queued age, failure ratio, workers gone and keys at their limit', () => {
    const rules = parse(fs.readFileSync(RULES, 'utf8')).groups.flatMap((g: any) => g.rules);
    const byMetric = (metric: string) => rules.filter((r: any) => metricsOf(r.expr).includes(metric)).map((r: any) => r.alert);
    expect(byMetric('drover_runs_stuck')).toEqual(['DroverRunsStuck']);
    expect(byMetric('drover_oldest_queued_step_age_seconds')).toEqual(['DroverQueuedStepWaiting']);
    expect(byMetric('drover_runs_finished_total')).toEqual(['DroverRunFailureRatioHigh']);
    expect(byMetric('drover_workers')).toEqual(['DroverNoWorkers', 'DroverWorkersGone', 'DroverHealthUnknown']);
    expect(byMetric(FLOW_KEYS_AT_LIMIT_METRIC)).toEqual(['DroverFlowKeysAtLimit']);
    for (const rule of rules) expect({ alert: rule.alert, severity: rule.labels?.severity, summary: typeof rule.annotations?.summary }).toEqual({ alert: rule.alert, severity: expect.stringMatching(/^(critical|warning|info)$/), summary: 'string' });
  });
});

describe('the Grafana dashboard', () => {
  test('is a dashboard whose every query is valid PromQL (checked by promtool)', () => {
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
    expect(dashboard).toMatchObject({ uid: 'drover-overview', title: 'drover' });
    const variables = dashboard.templating.list.map((v: any) => v.name);
    expect(variables).toEqual(['datasource', 'queue']);
    for (const p of dashboard.panels.filter((q: any) => q.type !== 'row')) expect({ panel: p.title, datasource: p.datasource }).toEqual({ panel: p.title, datasource: { type: 'prometheus', uid: '${datasource}' } });
    // promtool has no query checker: each expression becomes a recording rule, which `check rules` parses.
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const file = path.join(tmp, 'dashboard-queries.yaml');
    fs.writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.expr })) }] }));
    const { code, output } = promtool('check', 'rules', file);
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining(`SUCCESS: ${exprs.length} rules found`) });
  });
});

describe('the metrics the rules and the dashboard use', () => {
  test('are all served by drover', async () => {
    const served = new Set((await new Metrics({ processMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name));
    const rules = parse(fs.readFileSync(RULES, 'utf8')).groups.flatMap((g: any) => g.rules).map((r: any) => ({ panel: `alert ${r.alert}`, expr: r.expr }));
    const used = new Set([...rules, ...dashboardExprs()].flatMap((e) => metricsOf(e.expr)));
    expect(used.size).toBeGreaterThanOrEqual(12);
    expect(used).toContain(FLOW_KEYS_AT_LIMIT_METRIC);
    const missing = [...used].filter((name) => !served.has(name));
    expect(missing).toEqual([]);
  });
});
