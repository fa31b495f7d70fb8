import * as path from 'node:path';
import { ApiKeyStore } from '../src/auth/api-keys';
import { startServer, type DroverServer } from '../src/http/server';
import type { Maintenance } from '../src/maintenance/maintenance';
import { launchBrowser, screenshotDir, signIn, type TestBrowser } from './helpers/browser';
import { createEngine, eventually, type EngineHarness } from './helpers/engine';
import { echo } from './helpers/fixtures';

describe('the schedules page in a browser', () => {
  let engine: EngineHarness;
  let server: DroverServer;
  let browser: TestBrowser;
  let maintenance: Maintenance;
  let adminKey: string;
  let readKey: string;

  beforeAll(async () => {
    engine = await createEngine('redis');
    await engine.startWorker({ workflows: [{ name: 'report', steps: [{ name: 'build', processor: 'echo' }] }], processors: { echo: echo() } });
    const keys = new ApiKeyStore(engine.sql);
    adminKey = (await keys.create('ops', { scope: 'admin' })).key;
    readKey = (await keys.create('viewer', { scope: 'read' })).key;
    await engine.drover.createSchedule({ name: 'every-second', workflow: 'report', cron: '* * * * * *', overlap: 'allow' });
    await engine.drover.createSchedule({ name: 'nightly-berlin', workflow: 'report', cron: '30 2 * * *', timezone: 'Europe/Berlin', catchUp: 'none' });
    await engine.drover.createSchedule({ name: 'stopped', workflow: 'report', cron: '0 * * * *' });
    await engine.drover.pauseSchedule('stopped');
    maintenance = engine.drover.startMaintenance({ retention: false });
    server = await startServer({ drover: engine.drover, port: 0 });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await maintenance?.stop();
    await engine?.close();
  });

  it('lists schedules with next fire, state and latest runs, and pauses one (confirmed, audited) without a reload', async () => {
    await eventually(async () => (await engine.drover.getSchedule('every-second')).recentRunIds.length >= 3, 15_000, 'three ticks');
    await signIn(browser.context, server.url, adminKey);
    const page = await browser.context.newPage();
    const response = await page.goto(`${server.url}/schedules`);
    expect(response?.status()).toBe(200);
    expect(await page.getByRole('link', { name: 'Schedules' }).getAttribute('aria-current')).toBe('page');
    const row = page.locator('[data-schedule="every-second"]');
    expect(await row.getAttribute('data-paused')).toBe('false');
    expect(await row.textContent()).toContain('* * * * * *');
    const next = await row.locator('[data-next-fire]').getAttribute('data-next-fire');
    expect(Math.abs(Date.parse(next!) - Date.now())).toBeLessThan(5000);
    expect(await row.locator('[data-run-id]').count()).toBeGreaterThanOrEqual(3);
    const berlin = page.locator('[data-schedule="nightly-berlin"]');
    expect(await berlin.textContent()).toContain('(Europe/Berlin)');
    expect(await berlin.textContent()).toContain('catch-up none');
    expect(await page.locator('[data-schedule="stopped"]').getAttribute('data-paused')).toBe('true');
    expect(await page.locator('[data-schedule="stopped"]').getByRole('button', { name: 'Resume' }).count()).toBe(1);
    await page.screenshot({ path: path.join(screenshotDir(), 'schedules.png'), fullPage: true });

    await row.getByRole('button', { name: 'Pause' }).click();
    const dialog = page.getByRole('dialog');
    expect(await dialog.textContent()).toContain('Pause schedule every-second?');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await page.waitForSelector('[data-schedule="every-second"][data-paused="true"]', { timeout: 5000, state: 'attached' });
    expect((await engine.drover.getSchedule('every-second')).paused).toBe(true);
    const [event] = await engine.sql.query(`SELECT actor FROM drover.audit_events WHERE type = 'schedule.paused' AND data->>'name' = 'every-second'`);
    expect(event.actor).toBe('api:ops');
    await page.close();
  });

  it('shows a read key the schedules without the buttons, and refuses its pause', async () => {
    await browser.context.clearCookies();
    await signIn(browser.context, server.url, readKey);
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/schedules`);
      expect(await page.locator('[data-schedule]').count()).toBe(3);
      expect(await page.getByRole('button', { name: /Pause|Resume/ }).count()).toBe(0);
      expect(await page.locator('[data-schedule="stopped"]').textContent()).toContain('admin key needed');
      const refused = await page.evaluate(async () => (await fetch('/api/schedules/stopped/resume', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
      expect(refused).toBe(403);
    } finally {
      await page.close();
    }
  });
});
