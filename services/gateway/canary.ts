import { randomInt } from "node:crypto";
import type { Health } from "../shared/health.ts";
import type { Logger } from "../shared/logger.ts";
import type { Bus } from "../shared/ports/bus.ts";
import { publishEvents, TOPICS } from "../shared/topics.ts";

/** DeliveryCanaryOptions configure a gateway's canary. */
export interface DeliveryCanaryOptions {
  region: string;
  instanceId: string;
  /** intervalMs is how often a canary is sent. */
  intervalMs: number;
  /** timeoutMs: with no canary back for this long, the region cannot deliver. */
  timeoutMs: number;
  bus: Pick<Bus, "publish">;
  health: Pick<Health, "setCheck">;
  log: Logger;
  /** onChange hears the region's ability to deliver flip (after the timeout, or at once back). */
  onChange?: (delivering: boolean) => void;
  now?: () => number;
}

/**
 * DeliveryCanary proves that this gateway's region delivers end to end, not merely that the
 * process is up (DESIGN.md §7): every interval it publishes a canary on the bus; messaging
 * writes it to the store, reads it back and returns it over this instance's delivery channel,
 * the path every message takes. While canaries come back the health check "delivery" holds;
 * when none has for `timeoutMs` (the bus, the store, messaging or the channel is gone) it fails,
 * so the load balancer, Route 53 and the SDK leave the region. One canary back restores it.
 */
export class DeliveryCanary {
  readonly #o: DeliveryCanaryOptions;
  readonly #now: () => number;
  readonly #sent = new Map<bigint, number>();
  #lastBackAtMs: number;
  #lastTickMs: number;
  #delivering = true;
  #timer: NodeJS.Timeout | undefined;
  /** roundTripMs is the last canary's time from publish to return. */
  roundTripMs: number | undefined;
  /** lost counts canaries that did not come back within the timeout, since the start. */
  lost = 0;

  constructor(opts: DeliveryCanaryOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#lastBackAtMs = this.#now();
    this.#lastTickMs = this.#lastBackAtMs;
  }

  get delivering(): boolean {
    return this.#delivering;
  }

  start(): void {
    this.#lastBackAtMs = this.#now();
    const tick = () => {
      const now = this.#now();
      // A tick far later than due means this process did not run (stopped, or starved): the
      // silence is its own, not the region's. Judge the canaries sent from now on.
      if (now - this.#lastTickMs > 3 * this.#o.intervalMs) {
        this.#lastBackAtMs = Math.max(this.#lastBackAtMs, now - this.#o.intervalMs);
      }
      this.#lastTickMs = now;
      this.#send();
      this.check();
      this.#timer = setTimeout(tick, this.#o.intervalMs);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  /** returned takes a canary back from the delivery channel. */
  returned(nonce: bigint): void {
    const sentAt = this.#sent.get(nonce);
    if (sentAt === undefined) return;
    this.#sent.delete(nonce);
    const now = this.#now();
    this.roundTripMs = now - sentAt;
    this.#lastBackAtMs = Math.max(this.#lastBackAtMs, now);
    this.check();
  }

  /** check updates the health check from the age of the last canary that came back. */
  check(): void {
    const silentMs = this.#now() - this.#lastBackAtMs;
    const delivering = silentMs < this.#o.timeoutMs;
    this.#o.health.setCheck(
      "delivery",
      delivering,
      `no delivery canary came back for ${Math.round(silentMs / 1000)} s (bus, store, messaging or delivery channel down)`,
    );
    if (delivering === this.#delivering) return;
    this.#delivering = delivering;
    this.#o.log[delivering ? "info" : "error"](
      { silentMs },
      delivering ? "delivery canary back: region delivers" : "region cannot deliver",
    );
    this.#o.onChange?.(delivering);
  }

  #send(): void {
    const nonce = BigInt(randomInt(1, 2 ** 47));
    const now = this.#now();
    this.#sent.set(nonce, now);
    // Canaries lost on the way are forgotten after the timeout.
    for (const [n, at] of this.#sent) {
      if (now - at > this.#o.timeoutMs) {
        this.#sent.delete(n);
        this.lost++;
      }
    }
    // A new key each time spreads the canaries over every partition: one partition whose
    // consumer died stalls only until its group rebalances, and must not make the whole region
    // look dead (its other partitions still deliver). No canary back at all is the region.
    publishEvents(this.#o.bus, TOPICS.canary, [
      {
        key: `${this.#o.instanceId}-${nonce}`,
        value: {
          region: this.#o.region,
          instanceId: this.#o.instanceId,
          nonce,
          sentAtMs: BigInt(now),
        },
      },
    ]).catch((err) => this.#o.log.debug({ err }, "could not publish the delivery canary"));
  }
}
