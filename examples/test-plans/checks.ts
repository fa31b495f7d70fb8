/** A plan's checks: what each kind is and how it runs (no network beyond the URL a plan names). */
import { z } from 'zod';

/** The checks a plan may hold; a plan is validated against this before it is stored. */
export const CheckSchema = z.discriminatedUnion('kind', [
  z.object({ name: z.string().min(1).max(200), kind: z.literal('http'), url: z.string().url().refine((u) => /^https?:\/\//.test(u), 'only http and https'), expectStatus: z.number().int().min(100).max(599).default(200) }),
  // Fails its first `failures` attempts, then passes: a stand-in for a check against a service that is still starting.
  z.object({ name: z.string().min(1).max(200), kind: z.literal('flaky'), failures: z.number().int().min(0).max(10) }),
]);
/** One check of a plan. */
export type Check = z.infer<typeof CheckSchema>;
/** A new plan: a unique name and 1–100 checks, in order. */
export const NewPlanSchema = z.object({ name: z.string().min(1).max(200), checks: z.array(CheckSchema).min(1).max(100) });

/** What one attempt of a check found: `ok: false` is retried while attempts are left. */
export type CheckOutcome = { ok: boolean; detail: string };

/** Runs one attempt (1-based) of a check. */
export async function runCheck(check: Check, attempt: number, signal: AbortSignal): Promise<CheckOutcome> {
  if (check.kind === 'flaky') {
    return attempt > check.failures ? { ok: true, detail: `passed on attempt ${attempt}` } : { ok: false, detail: `failing attempt ${attempt} of ${check.failures}` };
  }
  try {
    const res = await fetch(check.url, { signal: AbortSignal.any([signal, AbortSignal.timeout(5000)]) });
    await res.body?.cancel();
    return res.status === check.expectStatus
      ? { ok: true, detail: `HTTP ${res.status}` }
      : { ok: false, detail: `HTTP ${res.status}, expected ${check.expectStatus}` };
  } catch (error) {
    return { ok: false, detail: `request failed: ${(error as Error).message}` };
  }
}
