import * as path from 'node:path';
import type { Page } from 'playwright-core';
import type { WorkflowDefinition } from '../src/types';
import { openSignedInConsole, screenshotDir, type SignedInConsole, type TestBrowser } from './helpers/browser';
import { createEngine, type EngineHarness } from './helpers/engine';
import { sleep } from './helpers/fixtures';
import type { DroverProcess } from './helpers/server-process';
import { waitForEvent } from './helpers/waits';

const workflows: WorkflowDefinition[] = [
  {
    name: 'review',
    steps: [
      { name: 'draft', processor: 'draft' },
      { name: 'approve', waitFor: { signal: 'approved' }, dependsOn: ['draft'] },
      { name: 'publish', processor: 'publish', dependsOn: ['approve'] },
    ],
  },
  { name: 'crawl-page', steps: [{ name: 'fetch', processor: 'fetch' }] },
  {
    name: 'crawl',
    steps: [
      { name: 'seed', processor: 'seed' },
      { name: 'pages', map: { over: 'seed.links' }, processor: 'visit', dependsOn: ['seed'], concurrency: 4 },
      { name: 'deep', run: { workflow: 'crawl-page', input: 'input' }, dependsOn: ['seed'] },
    ],
  },
];

const waitFor = (page: Page, selector: string, timeout = 15_000) => page.waitForSelector(selector, { timeout, state: 'attached' });

describe('waits on the run page in a browser', () => {
  jest.setTimeout(120_000);
  let engine: EngineHarness;
  let server: DroverProcess;
  let browser: TestBrowser;
  let web: SignedInConsole;
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(screenshotDir(), `${name}.png`), fullPage: true });

  beforeAll(async () => {
    engine = await createEngine('redis');
    await engine.startWorker({
      workflows,
      concurrency: 8,
      processors: {
        draft: async () => ({ title: 'Hello' }),
        publish: async (ctx: any) => ({ published: ctx.parents.approve }),
        seed: async () => ({ links: Array.from({ length: 24 }, (_, i) => `/page/${i}`) }),
        visit: async (ctx: any) => { await sleep(ctx.index === 3 ? 40 : 15); if (ctx.index === 3 && ctx.step.attempt === 1) throw new Error('flaky page'); return { url: ctx.item }; },
        fetch: async () => ({ ok: true }),
      },
    });
    web = await openSignedInConsole(engine, 'dash-reviewer');
    ({ server, browser } = web);
  });
  afterAll(async () => {
    const code = await web?.close();
    await engine?.close();
    expect(code).toBe(0);
  });

  it('sends a signal from the Send signal button (a form in a dialog), audited with the signed-in key', async () => {
    const run = await engine.drover.createRun({ workflow: 'review' });
    await waitForEvent(engine, run.id, 'step.waiting', 'approve');
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/runs/${run.id}`);
    await waitFor(page, '[data-step="approve"][data-status="queued"]');
    // One place for an action's error (the confirm and the signal dialogs share it).
    expect(await page.locator('[id="action-error"]').count()).toBe(1);
    await page.getByRole('button', { name: 'Send signal' }).click();
    const dialog = page.getByRole('dialog', { name: /Send signal "approved"/ });
    expect(await dialog.textContent()).toContain('Step approve waits for it');
    await dialog.getByLabel(/Payload/).fill('{"by": "the browser"}');
    await shot(page, 'run-send-signal');
    await dialog.getByRole('button', { name: 'Send' }).click();
    await waitFor(page, '[data-run-status="succeeded"]');
    expect(await page.getByRole('button', { name: 'Send signal' }).count()).toBe(0);
    const done = await engine.drover.getRun(run.id);
    expect(done.steps.find((s) => s.name === 'approve')!.output).toEqual({ by: 'the browser' });
    const audit = (await engine.drover.getAudit(run.id)).items.find((e) => e.type === 'run.signal_received');
    expect(audit).toMatchObject({ actor: 'api:dash-reviewer', data: { signal: 'approved', delivered: ['approve'] } });
    // A payload that is not JSON is refused in words, before anything is sent.
    const other = await engine.drover.createRun({ workflow: 'review' });
    await waitForEvent(engine, other.id, 'step.waiting', 'approve');
    await page.goto(`${server.url}/runs/${other.id}`);
    await waitFor(page, '[data-step="approve"][data-status="queued"]');
    await page.getByRole('button', { name: 'Send signal' }).click();
    await page.getByRole('dialog', { name: /Send signal/ }).getByLabel(/Payload/).fill('{oops');
    await page.getByRole('dialog', { name: /Send signal/ }).getByRole('button', { name: 'Send' }).click();
    await page.getByRole('alert').getByText(/The payload is not JSON/).waitFor({ timeout: 10_000 });
    expect((await engine.drover.getAudit(other.id)).items.filter((e) => e.type === 'run.signal_received')).toHaveLength(0);
    await engine.drover.cancelRun(other.id);
    await page.close();
  });

  it('draws a map step\'s elements (progress and a list) and links child and parent runs both ways', async () => {
    const run = await engine.drover.createRun({ workflow: 'crawl', input: { url: '/' } });
    const done = await engine.drover.waitForRun(run.id, { timeoutMs: 30_000 });
    expect(done.status).toBe('succeeded');
    const page = await browser.context.newPage();
    await page.goto(`${server.url}/runs/${run.id}`);
    await waitFor(page, '[data-run-status="succeeded"]');
    const map = page.locator('[data-map="pages"]');
    expect(await map.locator('h3').textContent()).toContain('24 of 24 elements done');
    expect(await map.locator('[data-element]').count()).toBe(24);
    expect(await map.locator('[data-element="pages[3]"]').getAttribute('data-status')).toBe('succeeded');
    expect(await map.locator('[data-element="pages[3]"]').textContent()).toContain('2 attempts');
    // The DAG holds the definition's steps, not the elements.
    expect(await page.locator('[data-step]').count()).toBe(3);
    const childId = done.children![0].id;
    const childLink = page.locator(`[data-child-run="${childId}"] a`).first();
    expect(await childLink.getAttribute('href')).toBe(`/runs/${childId}`);
    await shot(page, 'run-map-and-child');
    await childLink.click();
    await waitFor(page, `[data-run-id="${childId}"]`);
    expect(await page.locator(`[data-parent-run="${run.id}"]`).getAttribute('href')).toBe(`/runs/${run.id}`);
    // An element's own panel opens from its link.
    await page.goto(`${server.url}/runs/${run.id}?step=${encodeURIComponent('pages[3]')}`);
    await page.getByRole('region', { name: /Step pages\[3\]/ }).waitFor({ timeout: 15_000 });
    await page.close();
  });
});
