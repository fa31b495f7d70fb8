import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Drover } from '../src/drover';
import { createTestDatabase, testRedisUrl, uniqueNamespace } from './helpers/env';
import { CHROMIUM, CHROMIUM_ARGS, requireChromium, screenshotDir } from './helpers/browser';
import { cliEnv, spawnDrover, type DroverProcess } from './helpers/server-process';

describe('in Chromium: sign in, Bull Board under its CSP, sign out', () => {
  let drover: Drover;
  let server: DroverProcess;
  let browser: Browser;
  let key: string;

  beforeAll(async () => {
    const databaseUrl = await createTestDatabase();
    const namespace = uniqueNamespace();
    drover = await Drover.connect({ databaseUrl, redisUrl: testRedisUrl(), namespace });
    await drover.registerWorkflows([{ name: 'one', steps: [{ name: 's', processor: 'p' }] }]);
    key = (await drover.apiKeys.create('browser')).key;
    server = await spawnDrover(['server'], cliEnv({ DATABASE_URL: databaseUrl, REDIS_URL: testRedisUrl(), PORT: '0', DROVER_NAMESPACE: namespace }));
    requireChromium();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    const code = await server?.stop();
    await drover?.close();
    expect(code).toBe(0);
  });

  /** A page that records every CSP violation (the listener is injected by the driver, outside the page's CSP). */
  async function watchedPage(): Promise<{ page: Page; violations: () => Promise<string[]>; console: string[] }> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    // Strings, not functions: the tests compile without the DOM types.
    await page.addInitScript({ content: `window.__violations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));` });
    return {
      page,
      console: consoleLines,
      violations: async () => [
        ...(await page.evaluate<string[]>('window.__violations')),
        ...consoleLines.filter((l) => /Content Security Policy/i.test(l)),
      ],
    };
  }

  it('sends an unsigned browser from Bull Board to /login, signs in with the key and renders Bull Board with no CSP violation', async () => {
    const { page, violations, console: lines } = await watchedPage();
    await page.goto(`${server.url}/admin/queues`);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect(new URL(page.url()).searchParams.get('next')).toBe('/admin/queues');
    expect(await page.getByLabel('API key').getAttribute('type')).toBe('password');
    await page.screenshot({ path: path.join(screenshotDir(), 'login.png'), fullPage: true });
    expect(await violations()).toEqual([]);

    // A wrong key: the form again, with a message.
    await page.getByLabel('API key').fill('drv_000000000000_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    expect(await page.getByRole('alert').textContent()).toBe('That API key is not valid or was revoked.');
    expect(page.url()).not.toContain('drv_');

    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${server.url}/admin/queues`);
    expect(page.url()).not.toContain('drv_');
    // Bull Board rendered its React app (the queue list, with drover's default queue) under its CSP.
    await page.getByText('default', { exact: false }).first().waitFor({ timeout: 15_000 });
    await page.waitForLoadState('networkidle').catch(() => undefined);
    await page.screenshot({ path: path.join(screenshotDir(), 'bull-board.png'), fullPage: true });
    expect([await violations(), lines.filter((l) => l.startsWith('pageerror'))]).toEqual([[], []]);
    const cookies = await page.context().cookies();
    expect(cookies).toEqual([expect.objectContaining({ name: 'drover_session', httpOnly: true, sameSite: 'Strict', path: '/' })]);
    await page.close();
  });

  it('a page of another site cannot post a form to drover with the session (cross-site refused)', async () => {
    const { page } = await watchedPage();
    await page.goto(`${server.url}/login`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${server.url}/`); // the runs dashboard
    const run = await drover.createRun({ workflow: 'one' });
    // 127.0.0.1 and localhost are different sites to the browser: a page on one posts to the other.
    const other = server.url.replace('127.0.0.1', 'localhost');
    await page.route(`${other}/evil`, (route) => route.fulfill({
      contentType: 'text/html',
      body: `<form id="f" method="post" action="${server.url}/api/runs/${run.id}/cancel"><input name="x" value="1"></form>`,
    }));
    await page.goto(`${other}/evil`);
    const [response] = await Promise.all([page.waitForResponse(`${server.url}/api/runs/${run.id}/cancel`), page.evaluate(`document.getElementById('f').submit()`)]);
    expect(response.status()).toBe(403);
    expect((await drover.getRun(run.id)).status).toBe('pending');
    await page.close();
  });
});
