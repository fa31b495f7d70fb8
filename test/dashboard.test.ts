import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { ApiKeyStore } from '../src/auth/api-keys';
import { NonRetryableError } from '../src/errors';
import { demoProcessors, demoWorkflows } from '../src/processors/demo';
import type { ProcessorContext } from '../src/types';
import { launchBrowser, openSignedInConsole, screenshotDir, signIn, type SignedInConsole, type TestBrowser } from './helpers/browser';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { echo, sleep } from './helpers/fixtures';
import { http, type DroverProcess } from './helpers/server-process';


const workflows = [
  ...demoWorkflows,
  { name: 'hold', steps: [{ name: 'wait', processor: 'hold' }, { name: 'after', processor: 'echo', dependsOn: ['wait'] }] },
  { name: 'breaks', steps: [{ name: 'prepare', processor: 'echo' }, { name: 'x', processor: 'breaks', dependsOn: ['prepare'] }] },
  { name: 'pair', steps: [{ name: 'a', processor: 'echo' }, { name: 'b', processor: 'echo', dependsOn: ['a'] }] },
  {
    name: 'typed-input', inputSchema: { type: 'object', properties: { tenant: { type: 'string' } }, required: ['tenant'] },
    steps: [{ name: 'only', processor: 'echo' }],
  },
];

/** Waits until `selector` is on the page (the page itself never reloads). */
const waitFor = (page: Page, selector: string, timeout = 5000) => page.waitForSelector(selector, { timeout, state: 'attached' });

describe('the runs dashboard in a browser', () => {
  let engine: EngineHarness;
  let server: DroverProcess;
  let browser: TestBrowser;
  let key: string;
  let web: SignedInConsole;
  let failBreaks = true;
  const api = (p: string, init: Parameters<typeof http>[1] = {}) =>
    http(`${server.url}${p}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string> | undefined) } });
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(screenshotDir(), `${name}.png`), fullPage: true });

  beforeAll(async () => {
    engine = await createEngine('redis');
    await engine.startWorker({
      workflows,
      processors: {
        ...demoProcessors,
        echo: echo(),
        hold: async (ctx: ProcessorContext) => { await sleep(60_000, ctx.signal); return {}; },
        breaks: async () => { if (failBreaks) throw new NonRetryableError('broken on purpose'); return { fixed: true }; },
      },
    });
    web = await openSignedInConsole(engine, 'dash-test');
    ({ server, browser, key } = web);
  });
  afterAll(async () => {
    const code = await web?.close();
    await engine?.close();
    expect(code).toBe(0);
  });

  it('draws the demo run as a DAG with each step state, and the step panel shows attempts, logs and the Bull Board job', async () => {
    const run = await engine.drover.createRun({ workflow: 'demo', input: { url: 'https://example.test/text' } });
    await engine.drover.waitForRun(run.id, { timeoutMs: 30_000 });
    const page = await browser.context.newPage();
    const response = await page.goto(`${server.url}/runs/${run.id}`);
    expect(response?.status()).toBe(200);
    await waitFor(page, '[data-run-status="succeeded"]');
    for (const name of ['fetch', 'count-words', 'flaky-lookup', 'delayed-enrich', 'summarize']) {
      const node = page.locator(`[data-step="${name}"]`);
      expect(await node.getAttribute('data-status')).toBe('succeeded');
      expect(await node.textContent()).toContain('succeeded');
    }
    // Keyboard: tab to a node and press Enter opens its panel.
    await page.locator('[data-step="flaky-lookup"]').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/step=flaky-lookup/);
    const panel = page.getByRole('region', { name: /Step flaky-lookup/ });
    const attempts = panel.locator('table.attempts tr[data-attempt]');
    expect(await attempts.count()).toBe(3);
    expect(await attempts.nth(0).textContent()).toContain('retrying');
    expect(await panel.locator('tr.attempt-error').first().textContent()).toContain('lookup service busy (attempt 1)');
    expect(await attempts.nth(2).textContent()).toContain('succeeded');
    expect(await panel.getByText("Parents' outputs").count()).toBe(1);
    const jobLink = await panel.getByRole('link', { name: 'Open the job in Bull Board' }).getAttribute('href');
    const [step] = (await engine.drover.getRun(run.id)).steps.filter((s) => s.name === 'flaky-lookup');
    expect(jobLink).toBe(`/admin/queues/queue/${encodeURIComponent(`${engine.namespace}.default`)}/${step.id}-g0`);
    await shot(page, 'run');
    await page.goto(`${server.url}/runs/${run.id}?step=fetch`);
    expect(await page.locator('ol.logs').textContent()).toContain('fetching https://example.test/text');
    expect(await page.locator('.timeline tbody tr').count()).toBeGreaterThan(10);
    await page.close();
  });

  it('cancels a running run from its page (confirmed) and shows the change without a reload', async () => {
    const run = await engine.drover.createRun({ workflow: 'hold' });
    await eventually(async () => (await engine.drover.getRun(run.id)).steps[0].status === 'running', 20_000, 'the step to run');
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/runs/${run.id}`);
    await waitFor(page, '[data-step="wait"][data-status="running"]');
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 1; });
    await page.getByRole('button', { name: 'Cancel run' }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toContain('Cancel this run?');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await waitFor(page, '[data-run-status="cancelled"]', 2000);
    await waitFor(page, '[data-step="wait"][data-status="cancelled"]', 2000);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Resume run' }).count()).toBe(1);
    const audit = await engine.drover.getAudit(run.id);
    expect(audit.items.find((e) => e.type === 'run.cancelled')?.actor).toBe('api:dash-test');
    await page.close();
  });

  it('follows a run changed elsewhere within 2 s (server-sent events), and shows refusals in words', async () => {
    const run = await engine.drover.createRun({ workflow: 'hold' });
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/runs/${run.id}`);
    await waitFor(page, '[data-run-status]');
    await page.evaluate(() => { (window as unknown as { marker: number }).marker = 1; });
    await eventually(async () => (await engine.drover.getRun(run.id)).steps[0].status === 'running', 20_000, 'the step to run');
    await waitFor(page, '[data-step="wait"][data-status="running"]', 2000);
    await engine.drover.cancelRun(run.id, { actor: 'elsewhere' });
    await waitFor(page, '[data-run-status="cancelled"]', 2000);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    // An action the server refuses (resumed meanwhile by someone else) is told in words.
    await page.evaluate(() => { document.querySelector('[data-action="rerun"]')!.setAttribute('data-action', 'cancel'); });
    await page.getByRole('button', { name: 'Rerun' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    const alert = page.getByRole('alert');
    await alert.getByText(/cannot be cancelled/).waitFor({ timeout: 2000 });
    await page.close();
  });

  it('resumes a failed run and sees it succeed', async () => {
    failBreaks = true;
    const run = await engine.drover.createRun({ workflow: 'breaks' });
    await engine.drover.waitForRun(run.id, { timeoutMs: 20_000 });
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/runs/${run.id}?step=x`);
    await waitFor(page, '[data-run-status="failed"]');
    expect(await page.locator('[data-step="x"]').getAttribute('data-status')).toBe('failed');
    expect(await page.locator('[data-step="prepare"]').getAttribute('data-status')).toBe('succeeded');
    expect(await page.locator('.panel').textContent()).toContain('broken on purpose');
    // The run's error says in words which step failed first, with its code, and links to it.
    const cause = page.locator('.run-error-cause');
    expect((await cause.textContent())?.replace(/\s+/g, ' ').trim()).toBe('Failed at step x with code non_retryable');
    expect(await cause.getByRole('link', { name: 'x' }).getAttribute('href')).toBe(`/runs/${run.id}?step=x`);
    await shot(page, 'run-failed');
    failBreaks = false;
    await page.getByRole('button', { name: 'Resume run' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await waitFor(page, '[data-run-status="succeeded"]', 10_000);
    expect(await page.locator('[data-step="x"]').getAttribute('data-status')).toBe('succeeded');
    const audit = await engine.drover.getAudit(run.id);
    expect(audit.items.find((e) => e.type === 'run.retried')?.actor).toBe('api:dash-test');
    await page.close();
  });

  it('reruns a run and lands on the new run, audited with the key name and rerunOf', async () => {
    const run = await engine.drover.createRun({ workflow: 'pair', input: { n: 7 }, workspace: 'team-a', priority: 3 });
    await engine.drover.waitForRun(run.id);
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/runs/${run.id}`);
    await page.getByRole('button', { name: 'Rerun' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await page.waitForURL((url) => /\/runs\/[0-9a-f-]{36}$/.test(url.pathname) && !url.pathname.endsWith(run.id), { timeout: 5000 });
    const newId = new URL(page.url()).pathname.split('/').pop()!;
    await waitFor(page, `[data-run-id="${newId}"]`);
    const rerun = await engine.drover.waitForRun(newId);
    expect(rerun).toMatchObject({ workflow: 'pair', input: { n: 7 }, workspace: 'team-a', priority: 3, status: 'succeeded' });
    const created = (await engine.drover.getAudit(newId)).items.find((e) => e.type === 'run.created');
    expect(created).toMatchObject({ actor: 'api:dash-test', data: { rerunOf: run.id } });
    await page.close();
  });

  it('POST /api/runs/:id/rerun answers 201 with the new run, 404 for an unknown run', async () => {
    const run = await engine.drover.createRun({ workflow: 'pair', input: { n: 8 } });
    const res = await api(`/api/runs/${run.id}/rerun`, { method: 'POST', json: {} });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ workflow: 'pair', input: { n: 8 }, workspace: 'default' });
    expect(res.body.id).not.toBe(run.id);
    expect((await api('/api/runs/00000000-0000-4000-8000-000000000000/rerun', { method: 'POST', json: {} })).status).toBe(404);
    expect((await api('/api/runs/nope/rerun', { method: 'POST', json: {} })).status).toBe(404);
    expect((await api(`/api/runs/${run.id}/rerun`)).status).toBe(405);
  });

  it('lists runs newest first with counts, filters, search and pages', async () => {
    const failed = await engine.drover.createRun({ workflow: 'breaks', workspace: 'ops', idempotencyKey: 'order-4711' });
    failBreaks = true;
    await engine.drover.waitForRun(failed.id, { timeoutMs: 20_000 }).catch(() => undefined);
    const ok = await engine.drover.createRun({ workflow: 'pair', workspace: 'ops' });
    await engine.drover.waitForRun(ok.id);
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/`);
    const rows = page.locator('tr[data-run-id]');
    expect(await rows.first().getAttribute('data-run-id')).toBe(ok.id);
    expect(await page.locator('[data-count-status="succeeded"]').textContent()).toMatch(/\d+ succeeded/);
    await shot(page, 'runs');

    await page.getByLabel('Status', { exact: true }).selectOption('failed');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/status=failed/);
    const statuses = await page.locator('tr[data-run-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    expect(statuses.length).toBeGreaterThan(0);
    expect(new Set(statuses)).toEqual(new Set(['failed']));

    await page.goto(`${server.url}/`);
    await page.getByRole('searchbox').fill('order-4711');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.waitForURL(/q=order-4711/);
    expect(await page.locator('tr[data-run-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run-id')))).toEqual([failed.id]);

    await page.goto(`${server.url}/?q=${ok.id}`);
    expect(await page.locator('tr[data-run-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run-id')))).toEqual([ok.id]);
    await page.goto(`${server.url}/?workspace=ops&workflow=pair&since=1h`);
    expect(await page.locator('tr[data-run-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run-id')))).toEqual([ok.id]);

    // Pages: a cursor link leads to older runs, none repeated.
    for (let i = 0; i < 26; i++) await engine.drover.createRun({ workflow: 'pair', workspace: 'paged' });
    await page.goto(`${server.url}/?workspace=paged`);
    const first = await page.locator('tr[data-run-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run-id')));
    expect(first).toHaveLength(25);
    await page.getByRole('link', { name: 'Older runs' }).click();
    await page.waitForURL(/cursor=/);
    const second = await page.locator('tr[data-run-id]').evaluateAll((els) => els.map((e) => e.getAttribute('data-run-id')));
    expect(second).toHaveLength(1);
    expect(first).not.toContain(second[0]);
    await page.close();
  });

  it('the list refreshes by itself when a run changes', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/?workflow=hold`);
    await waitFor(page, 'body[data-live]');
    const run = await engine.drover.createRun({ workflow: 'hold' });
    await waitFor(page, `tr[data-run-id="${run.id}"]`, 2000);
    await engine.drover.cancelRun(run.id);
    await waitFor(page, `tr[data-run-id="${run.id}"][data-status="cancelled"]`, 2000);
    await page.close();
  });

  it('answers a 404 page for an unknown run and a 400 page for a malformed query, never a 500', async () => {
    const page = await browser.context.newPage();
    for (const [p, status, text] of [
      ['/runs/00000000-0000-4000-8000-000000000000', 404, 'Not found'],
      ['/runs/not-a-uuid', 404, 'Not found'],
      ['/?status=exploded', 400, 'status: must be one of'],
      ['/?since=forever', 400, 'since'],
      ['/?cursor=garbage', 400, 'cursor'],
      ['/?color=red', 400, 'Bad request'],
      [`/runs/00000000-0000-4000-8000-000000000000?step=${'%E0%A4%A'}`, 400, 'Bad request'],
      ['/events?run=nope', 400, 'run'],
    ] as const) {
      const response = await page.goto(`${server.url}${p}`);
      expect([p, response?.status()]).toEqual([p, status]);
      expect(await page.locator('main').textContent()).toContain(text);
    }
    const res = await http(`${server.url}/`);
    expect(res.status).toBe(401);
    await page.close();
  });

  it('shows workflows, workers and queues (with the per-minute chart), and loads nothing from another host', async () => {
    const page = await browser.context.newPage();
    const foreign: string[] = [];
    page.on('request', (req) => { if (!req.url().startsWith(server.url)) foreign.push(req.url()); });
    await page.goto(`${server.url}/workflows`);
    expect(await page.locator('[data-workflow="demo"] [data-step="summarize"]').count()).toBe(1);
    expect(await page.getByRole('link', { name: 'Workflows' }).getAttribute('aria-current')).toBe('page');
    // A version's input schema is shown with it; a workflow without one says its input is not checked.
    const schema = page.locator('[data-workflow="typed-input"] [data-input-schema]');
    await schema.locator('summary').click();
    expect(await schema.textContent()).toContain('"required"');
    expect(await schema.textContent()).toContain('"tenant"');
    expect(await page.locator('[data-workflow="pair"]').textContent()).toContain('No input schema');
    await shot(page, 'workflows');
    await page.goto(`${server.url}/workers`);
    expect(await page.locator('tr[data-worker][data-status="active"]').count()).toBeGreaterThan(0);
    await shot(page, 'workers');
    await page.goto(`${server.url}/queues`);
    const row = page.locator('tr[data-queue="default"]');
    expect(await row.getByRole('link').getAttribute('href')).toBe(`/admin/queues/queue/${encodeURIComponent(`${engine.namespace}.default`)}`);
    expect(await page.getByRole('img', { name: /Steps per minute over the last hour: [1-9]\d* succeeded/ }).count()).toBe(1);
    await shot(page, 'queues');
    // Bull Board too: its template's Google Fonts link is taken out.
    await page.goto(`${server.url}/admin/queues`);
    await page.waitForLoadState('networkidle');
    expect(await page.getByText(`${engine.namespace}.default`).count()).toBeGreaterThan(0);
    expect(foreign).toEqual([]);
    await page.close();
  });

  it('signs out with the header button, and a revoked key\'s session ends at the next page', async () => {
    const keys = new ApiKeyStore(engine.sql);
    const other = await launchBrowser();
    try {
      const page = await other.context.newPage();
      const temporary = await keys.create('dash-temporary');
      await signIn(other.context, server.url, temporary.key);
      await page.goto(`${server.url}/`);
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(/\/login/);
      await page.goto(`${server.url}/workers`);
      expect(new URL(page.url()).pathname).toBe('/login');

      await signIn(other.context, server.url, temporary.key);
      await page.goto(`${server.url}/workers`);
      expect(new URL(page.url()).pathname).toBe('/workers');
      await keys.revoke(temporary.id);
      await page.goto(`${server.url}/workers`);
      expect(new URL(page.url()).pathname).toBe('/login');
      expect(new URL(page.url()).searchParams.get('next')).toBe('/workers');
    } finally {
      await other.close();
    }
  });
});
