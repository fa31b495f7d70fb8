import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { ApiKeyStore } from '../../src/auth/api-keys';
import type { EngineHarness } from './engine';
import { redisUrlFor } from './env';
import { cliEnv, spawnDrover, type DroverProcess } from './server-process';

/** Debian's Chromium (`apt-get install -y chromium`; `.ci/run` installs it when missing). */
export const CHROMIUM = '/usr/bin/chromium';

/** The flags FACTS.md measured for headless Chromium here. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];

/** Fails with what to do when Chromium is missing (never a silent skip). */
export function requireChromium(): void {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at ${CHROMIUM}: install it with "apt-get install -y chromium" (.ci/run does this)`);
  }
}

/** A browser of one test file: one context with a fresh profile, closed (and its profile removed) by `close()`. */
export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Launches Chromium with a fresh user-data dir and a 1280×800 viewport.
 * A missing Chromium fails the test with what to do (never a silent skip).
 */
export async function launchBrowser(): Promise<TestBrowser> {
  requireChromium();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'drover-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, viewport: { width: 1280, height: 800 }, timeout: 30_000,
    });
  } catch (error) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  let closed = false;
  return {
    context,
    async close() {
      if (closed) return;
      closed = true;
      // A browser that hangs on close must not keep the test file open.
      await Promise.race([context.close(), new Promise((r) => setTimeout(r, 10_000).unref())]).catch(() => undefined);
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Signs the browser in as a person does: the /login form with the API key,
 * which sets the session cookie every later page, fetch and event stream uses.
 */
export async function signIn(context: BrowserContext, baseUrl: string, key: string): Promise<void> {
  const page = await context.newPage();
  try {
    await page.goto(`${baseUrl}/login`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${baseUrl}/`);
  } finally {
    await page.close();
  }
}

/** Where page screenshots go: `DROVER_SCREENSHOTS_DIR` (e.g. docs/screenshots) or a temporary folder. */
export function screenshotDir(): string {
  const dir = process.env.DROVER_SCREENSHOTS_DIR ?? path.join(os.tmpdir(), 'drover-screenshots');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A `drover server` on an engine's database and a Chromium signed in to it (see `openSignedInConsole`). */
export interface SignedInConsole {
  server: DroverProcess;
  browser: TestBrowser;
  /** The key the browser signed in with. */
  key: string;
  /** Closes the browser and stops the server; resolves to the server's exit code. */
  close(): Promise<number | null>;
}

/** Spawns `drover server` on the engine's database and queues, makes a key named `keyName`, and signs a new Chromium in with it. */
export async function openSignedInConsole(engine: EngineHarness, keyName: string): Promise<SignedInConsole> {
  const key = (await new ApiKeyStore(engine.sql).create(keyName)).key;
  const server = await spawnDrover(['server'], cliEnv({
    DATABASE_URL: engine.databaseUrl, REDIS_URL: redisUrlFor(engine.kind), PORT: '0', DROVER_NAMESPACE: engine.namespace,
  }));
  let browser: TestBrowser | undefined;
  try {
    browser = await launchBrowser();
    await signIn(browser.context, server.url, key);
  } catch (error) {
    await browser?.close();
    await server.stop();
    throw error;
  }
  const opened = browser;
  return { server, browser: opened, key, async close() { await opened.close(); return server.stop(); } };
}
