import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createApp, type DroverApp } from '../src/http/app';
import { createEngine, type EngineHarness } from './helpers/engine';
import { launchBrowser, screenshotDir, type TestBrowser } from './helpers/browser';
import type { WorkflowDefinition } from '../src/types';

/** The value of one sample of the Prometheus text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const have = Object.fromEntries([...(/\{([^}]*)\}/.exec(line)?.[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const runsWf: WorkflowDefinition = { name: 'per-account', concurrency: { key: 'input.account', limit: 1 }, steps: [{ name: 'work', processor: 'p' }] };
const stepsWf: WorkflowDefinition = { name: 'per-region', steps: [{ name: 'call', processor: 'p', concurrency: { key: 'input.region', limit: 1 } }, { name: 'after', processor: 'p', dependsOn: ['call'] }] };

// No worker runs: the first run of each key holds its place (pending is open), the others wait.
describe('what people see of concurrency keys', () => {
  let engine: EngineHarness;
  let droverApp: DroverApp;
  let server: Server;
  let url: string;
  beforeAll(async () => {
    engine = await createEngine('redis');
    await engine.drover.registerWorkflows([runsWf, stepsWf]);
    droverApp = createApp({ drover: engine.drover, auth: false, queueGaugeCacheMs: 60_000 });
    server = droverApp.app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    droverApp.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await engine.close();
  });

  it('reports waiting runs and steps, and keys at their limit, in /metrics (read at scrape time, cached)', async () => {
    for (const account of ['a', 'a', 'a', 'b']) await engine.drover.createRun({ workflow: 'per-account', input: { account } });
    for (const region of ['eu', 'eu', 'eu', 'us']) await engine.drover.createRun({ workflow: 'per-region', input: { region } });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(sample(text, 'drover_flow_waiting', { workflow: 'per-account', kind: 'run' })).toBe(2);
    expect(sample(text, 'drover_flow_keys_at_limit', { workflow: 'per-account' })).toBe(2);
    expect(sample(text, 'drover_flow_waiting', { workflow: 'per-region', kind: 'step' })).toBe(2);
    expect(sample(text, 'drover_flow_keys_at_limit', { workflow: 'per-region' })).toBe(2);
    expect(sample(text, 'drover_flow_waiting', { workflow: 'per-region', kind: 'run' })).toBeUndefined();
    await engine.drover.createRun({ workflow: 'per-account', input: { account: 'b' } });
    const cached = await (await fetch(`${url}/metrics`)).text();
    expect(sample(cached, 'drover_flow_waiting', { workflow: 'per-account', kind: 'run' })).toBe(2);
  });

  it('says on the run page (and in the API) why a run waits', async () => {
    const holder = await engine.drover.createRun({ workflow: 'per-account', input: { account: 'page' } });
    const waiting = await engine.drover.createRun({ workflow: 'per-account', input: { account: 'page' } });
    const run = await engine.drover.getRun(waiting.id);
    expect(run.steps[0].waitingFor).toBe('concurrency key account=page (1/1 runs running)');
    expect((await engine.drover.getRun(holder.id)).steps[0].waitingFor).not.toMatch(/^concurrency/);
    const browser: TestBrowser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${url}/runs/${waiting.id}`);
      const line = page.locator('[data-flow-waiting]');
      await line.waitFor({ timeout: 10_000 });
      expect(await line.textContent()).toBe('Waiting for concurrency key account=page (1/1 runs running)');
      expect(await page.getByRole('status').filter({ hasText: 'Waiting for concurrency key' }).count()).toBe(1);
      await page.screenshot({ path: path.join(screenshotDir(), 'run-waiting-for-concurrency-key.png'), fullPage: true });
      await page.goto(`${url}/runs/${holder.id}`);
      await page.locator('[data-run-status]').waitFor();
      expect(await page.locator('[data-flow-waiting]').count()).toBe(0);
    } finally {
      await browser.close();
    }
  }, 60_000);
});
