/**
 * Backoff computes reconnect delays: exponential with full jitter, so clients that lost the
 * same server do not come back in lockstep.
 */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(opts: { initialMs?: number; maxMs?: number; random?: () => number } = {}) {
    this.#initialMs = opts.initialMs ?? 250;
    this.#maxMs = opts.maxMs ?? 15_000;
    this.#random = opts.random ?? Math.random;
  }

  /** next returns the delay before the next attempt and counts the attempt. */
  next(): number {
    const ceiling = Math.min(this.#maxMs, this.#initialMs * 2 ** this.#attempt);
    this.#attempt++;
    return Math.floor(this.#random() * ceiling);
  }

  /** reset starts over after a connection that worked. */
  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}
