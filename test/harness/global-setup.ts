import { startServices, type Services } from './services';

declare global {
  // Shared between jest's globalSetup and globalTeardown (same context).
  var __droverServices: Services | undefined;
}

/**
 * Starts one real Redis and one real Postgres for the whole test run and hands
 * their addresses to the test files through the environment.
 */
export default async function globalSetup(): Promise<void> {
  const services = await startServices();
  globalThis.__droverServices = services;
  process.env.DROVER_TEST_PG_URL = services.adminUrl;
  process.env.DROVER_TEST_REDIS_URL = services.redis.url;
  // Interrupted runs (Ctrl-C, SIGTERM from CI) still stop the servers.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      void services.stop().finally(() => process.kill(process.pid, signal));
    });
  }
}
