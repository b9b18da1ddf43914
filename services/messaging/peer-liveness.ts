/**
 * PeerLiveness says which other regions are alive, from their delivery canaries arriving on
 * the mirrored bus (every gateway instance sends one every few seconds). A region not heard
 * from for `deadAfterMs` is dead, or cut off from this one, which from here is the same: what
 * it had not delivered before going silent is this region's to deliver (takeover.ts).
 */
export class PeerLiveness {
  readonly #lastSeen = new Map<string, number>();
  readonly #deadAfterMs: number;
  readonly #now: () => number;

  constructor(peers: readonly string[], opts: { deadAfterMs: number; now?: () => number }) {
    this.#deadAfterMs = opts.deadAfterMs;
    this.#now = opts.now ?? Date.now;
    // Until a peer's first canary arrives it is given the benefit of the doubt.
    for (const p of peers) this.#lastSeen.set(p, this.#now());
  }

  /** seen records a sign of life of a peer region. */
  seen(region: string): void {
    if (this.#lastSeen.has(region)) this.#lastSeen.set(region, this.#now());
  }

  /** dead lists the peers silent for longer than deadAfterMs, with when each was last heard. */
  dead(): Array<{ region: string; lastSeenMs: number }> {
    const now = this.#now();
    return [...this.#lastSeen]
      .filter(([, at]) => now - at > this.#deadAfterMs)
      .map(([region, lastSeenMs]) => ({ region, lastSeenMs }));
  }

  /** alive says whether a peer has been heard from within deadAfterMs. */
  alive(region: string): boolean {
    const at = this.#lastSeen.get(region);
    return at !== undefined && this.#now() - at <= this.#deadAfterMs;
  }
}
