/** PRUNE_AT is how many buckets are kept before the full ones (idle users) are dropped. */
const PRUNE_AT = 10_000;

interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * RateLimiter is a token bucket per key (a user): `perMinute` tokens a minute, at most
 * `perMinute` saved up, so a user may spend a minute's worth at once and then one every
 * 60 / perMinute seconds. It lives in one task's memory: with several tasks behind a load
 * balancer, a user's effective limit is this one times the number of tasks.
 */
export class RateLimiter {
  readonly #perMinute: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  /** pruneAt grows with the users active at once, so pruning stays rare however many there are. */
  #pruneAt = PRUNE_AT;

  constructor(opts: { perMinute: number; now?: () => number }) {
    this.#perMinute = opts.perMinute;
    this.#now = opts.now ?? Date.now;
  }

  /** perMinute is the configured rate. */
  get perMinute(): number {
    return this.#perMinute;
  }

  /**
   * take spends one token of `key`. It answers 0 when there was one, else how many
   * milliseconds until there is (nothing is spent then).
   */
  take(key: string): number {
    const now = this.#now();
    const bucket = this.#refilled(key, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      this.#buckets.set(key, bucket);
      if (this.#buckets.size > this.#pruneAt) this.#prune(now);
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 60_000) / this.#perMinute);
  }

  #refilled(key: string, now: number): Bucket {
    const b = this.#buckets.get(key);
    if (!b) return { tokens: this.#perMinute, atMs: now };
    const tokens = Math.min(
      this.#perMinute,
      b.tokens + ((now - b.atMs) * this.#perMinute) / 60_000,
    );
    return { tokens, atMs: now };
  }

  /** prune drops the buckets that have filled up again: they are the same as none. */
  #prune(now: number): void {
    for (const [key] of this.#buckets) {
      if (this.#refilled(key, now).tokens >= this.#perMinute) this.#buckets.delete(key);
    }
    this.#pruneAt = Math.max(PRUNE_AT, this.#buckets.size * 2);
  }
}
