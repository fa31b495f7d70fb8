import { RateLimiterMemory } from 'rate-limiter-flexible';

/**
 * Counts failed authentications (a key or session presented and refused) per
 * client address over a one-minute window, with `rate-limiter-flexible`. An
 * address past the limit is refused before its credentials are looked at
 * until the window ends. In memory: each server process counts its own.
 */
export class AuthFailureLimiter {
  private readonly limiter: RateLimiterMemory | null;

  /** @param perMinute failures allowed per address per minute; 0 turns the limit off. */
  constructor(readonly perMinute: number) {
    if (!Number.isSafeInteger(perMinute) || perMinute < 0) throw new TypeError(`AuthFailureLimiter: perMinute must be a whole number >= 0 (got ${perMinute})`);
    this.limiter = perMinute > 0 ? new RateLimiterMemory({ points: perMinute, duration: 60 }) : null;
  }

  /** Whole seconds until `address` may authenticate again; 0 when it may now. */
  async blockedFor(address: string | undefined): Promise<number> {
    if (!this.limiter) return 0;
    const state = await this.limiter.get(address ?? 'unknown');
    if (!state || state.consumedPoints < this.perMinute) return 0;
    return Math.max(1, Math.ceil(state.msBeforeNext / 1000));
  }

  /** Counts one failed authentication from `address`. */
  async recordFailure(address: string | undefined): Promise<void> {
    await this.limiter?.penalty(address ?? 'unknown', 1);
  }
}

/** The message of a 429 for an address past the limit. */
export function tooManyFailuresMessage(seconds: number): string {
  return `too many failed authentications from this address: try again in ${seconds} s`;
}
