/** Stops the servers that globalSetup started, whatever the tests' outcome. */
export default async function globalTeardown(): Promise<void> {
  await globalThis.__droverServices?.stop();
  globalThis.__droverServices = undefined;
}
