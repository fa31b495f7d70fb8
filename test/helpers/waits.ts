import IORedis from 'ioredis';
import type { EngineHarness } from './engine';
import { eventually } from './engine';
import { testRedisUrl } from './env';

/**
 * The queue emptied under a running engine: on Redis every key of the test's
 * namespace deleted at once (a script runs atomically, as FLUSHALL would,
 * without touching the queues of tests beside it on the same server); on
 * BullMQ's PostgreSQL backend the test's queue obliterated.
 */
export async function emptyQueue(engine: EngineHarness, queue = 'default'): Promise<void> {
  if (engine.kind === 'redis') {
    const redis = new IORedis(testRedisUrl());
    try {
      await redis.eval(`
        local keys = redis.call('KEYS', ARGV[1])
        for i = 1, #keys, 1000 do redis.call('DEL', unpack(keys, i, math.min(i + 999, #keys))) end
        return #keys`, 0, `bull:${engine.namespace}.*`);
    } finally {
      redis.disconnect();
    }
  } else {
    await engine.backend.queue(queue).obliterate({ force: true });
  }
}

/** Waits until a run's audit trail has an event of `type` (for the step named `step`, when given). */
export async function waitForEvent(engine: EngineHarness, runId: string, type: string, step?: string, timeoutMs = 20_000): Promise<void> {
  await eventually(async () => {
    const items = (await engine.drover.getAudit(runId)).items;
    return items.some((e) => e.type === type && (step === undefined || e.stepName === step));
  }, timeoutMs, `${type}${step ? ` of ${step}` : ''}`);
}
