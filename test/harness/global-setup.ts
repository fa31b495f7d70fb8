import { RedisCluster } from './redis-cluster';
import { startServices, type Services } from './services';

declare global {
  // Shared between jest's globalSetup and globalTeardown (same context).
  var __droverServices: Services | undefined;
  var __droverCluster: RedisCluster | undefined;
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
  // DROVER_TEST_REDIS=cluster: every test's Redis is a 3-master, 3-replica Redis Cluster on loopback.
  if (process.env.DROVER_TEST_REDIS === 'cluster') {
    const cluster = new RedisCluster();
    globalThis.__droverCluster = cluster;
    try {
      process.env.DROVER_TEST_REDIS_URL = await cluster.start();
    } catch (error) {
      await Promise.allSettled([cluster.stop(), services.stop()]);
      throw error;
    }
  } else if (process.env.DROVER_TEST_REDIS !== undefined && process.env.DROVER_TEST_REDIS !== 'single') {
    await services.stop();
    throw new Error(`DROVER_TEST_REDIS must be "single" (default) or "cluster" (got "${process.env.DROVER_TEST_REDIS}")`);
  }
  // Interrupted runs (Ctrl-C, SIGTERM from CI) still stop the servers.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      void Promise.allSettled([services.stop(), globalThis.__droverCluster?.stop()]).finally(() => process.kill(process.pid, signal));
    });
  }
}
