/** Stops the servers that globalSetup started, whatever the tests' outcome. */
export default async function globalTeardown(): Promise<void> {
  await Promise.allSettled([globalThis.__droverServices?.stop(), globalThis.__droverCluster?.stop()]);
  globalThis.__droverServices = undefined;
  globalThis.__droverCluster = undefined;
}
