import type { Backoff } from "./backoff.ts";

/** Loss says how a connection that had been welcomed ended. */
export type Loss =
  /** The socket closed, or the client judged it dead. */
  | { kind: "dropped" }
  /** The server drained (go_away without leave_region): come back after its hint. */
  | { kind: "drain"; afterMs: number }
  /** The region cannot deliver (go_away with leave_region): go elsewhere. */
  | { kind: "leave" }
  /** The token was refused (4401): the region is fine, the token is not. */
  | { kind: "unauthenticated"; afterMs?: number };

/**
 * FailoverPlan decides where and when a client reconnects, given regions as indices into its
 * configured list and their preference order (lowest round-trip time first). It has no timers
 * and no sockets: the client asks it for a delay when a connection or an attempt ends, and for
 * a region when the delay is over (so a probe that ran meanwhile can reorder the regions).
 *
 * A lost connection is retried once in its own region right away (most drops are a network
 * blip, and the region has the device's state warm); when that fails, the next region is
 * tried at once, and after that every attempt waits for the jittered backoff, going through
 * the regions in preference order, pass after pass. A region that asked to be left is skipped
 * for the first pass only, so a client whose other regions are all down still comes back.
 * Nothing here moves a connected client: a region is left only when its connection is lost.
 */
export class FailoverPlan {
  readonly #size: number;
  readonly #backoff: Backoff;
  readonly #random: () => number;
  #retry: number | undefined;
  #skip: number | undefined;
  #firstPass = true;
  #switched = false;
  readonly #tried = new Set<number>();

  constructor(opts: { regions: number; backoff: Backoff; random?: () => number }) {
    this.#size = opts.regions;
    this.#backoff = opts.backoff;
    this.#random = opts.random ?? Math.random;
  }

  /** ranked is true when the next region depends on the preference order (not a retry). */
  get ranked(): boolean {
    return this.#retry === undefined;
  }

  /** begin starts the first connection: the preferred region, at once. */
  begin(): number {
    this.#newCycle();
    return 0;
  }

  /** lost starts a reconnection after the connection to `region` ended; returns the delay. */
  lost(region: number, loss: Loss): number {
    this.#newCycle();
    switch (loss.kind) {
      case "dropped":
        this.#retry = region;
        return 0;
      case "drain":
        this.#retry = region;
        return loss.afterMs + this.#jitter();
      case "unauthenticated":
        this.#retry = region;
        return loss.afterMs === undefined ? this.#backoff.next() : loss.afterMs + this.#jitter();
      case "leave":
        if (this.#size === 1) return this.#backoff.next();
        this.#skip = region;
        this.#switched = true;
        return 0;
    }
  }

  /** failed records that an attempt did not reach a welcome; returns the delay to the next. */
  failed(): number {
    if (!this.#switched && this.#size > 1) {
      this.#switched = true;
      return 0;
    }
    return this.#backoff.next();
  }

  /**
   * next picks the region of the attempt about to start. `order` lists every region index,
   * preferred first.
   */
  next(order: readonly number[]): number {
    let region = this.#retry;
    this.#retry = undefined;
    if (region === undefined) {
      region = order.find((i) => !this.#tried.has(i) && !(this.#firstPass && i === this.#skip));
      if (region === undefined) {
        this.#tried.clear();
        this.#firstPass = false;
        region = order[0] ?? 0;
      }
    }
    this.#tried.add(region);
    return region;
  }

  /** connected ends the reconnection: the next loss starts over. */
  connected(): void {
    this.#backoff.reset();
    this.#newCycle();
  }

  #newCycle(): void {
    this.#retry = undefined;
    this.#skip = undefined;
    this.#firstPass = true;
    this.#switched = false;
    this.#tried.clear();
  }

  #jitter(): number {
    return Math.floor(this.#random() * 250);
  }
}
