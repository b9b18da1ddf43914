import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { ConversationPosition } from "../../gen/chat/v1/client_pb.ts";
import type { BatchDeliveredItemSchema, Outcome } from "../../gen/chat/v1/messaging_pb.ts";
import { Code, isRetryableCode } from "../shared/errors.ts";
import type { Caller } from "../shared/interceptors.ts";
import type { Logger } from "../shared/logger.ts";

type Item = MessageInitShape<typeof BatchDeliveredItemSchema>;

/** AckRetryOptions tune how long and how often failed delivery acks are sent again. */
export interface AckRetryOptions {
  /** send makes one BatchMarkDelivered call; it answers one outcome per item, in order. */
  send: (items: Item[]) => Promise<Outcome[]>;
  log: Logger;
  /** firstDelayMs is the wait before the first retry; it doubles up to maxDelayMs. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** maxAgeMs: an ack still failing this long after its first failure is given up (logged). */
  maxAgeMs?: number;
}

interface Held {
  actor: Caller;
  conversationId: string;
  /** upTo is the delivered position per origin region. */
  upTo: Map<string, bigint>;
  firstFailedMs: number;
  /** retried says it was sent again at least once (an ack is never given up untried). */
  retried: boolean;
}

/**
 * AckRetry keeps the delivery acks whose call failed for a reason that may pass (messaging or
 * its bus unavailable, a deadline exceeded) and sends them again with backoff until they go
 * through. An ack is a position ("delivered up to"), so a later ack of the same device and
 * conversation merges into the one held (the greater position per region wins), and sending
 * one twice is harmless. Without this, a client that acked during an outage would leave its
 * senders without delivered receipts until it acked that conversation again.
 */
export class AckRetry {
  readonly #o: Required<Omit<AckRetryOptions, "log" | "send">> & AckRetryOptions;
  readonly #held = new Map<string, Held>();
  #timer: NodeJS.Timeout | undefined;
  #delayMs: number;
  #flushing = false;
  #closed = false;

  constructor(opts: AckRetryOptions) {
    this.#o = { firstDelayMs: 500, maxDelayMs: 10_000, maxAgeMs: 10 * 60_000, ...opts };
    this.#delayMs = this.#o.firstDelayMs;
  }

  /** size is how many (device, conversation) acks wait for a retry. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * retryableCode says whether an ack that failed with `code` is worth sending again: the
   * codes a retry can cure, and an interrupted call.
   */
  static retryableCode(code: Code): boolean {
    return isRetryableCode(code) || code === Code.Canceled;
  }

  /** retryable says whether a failed ack call is worth sending again. */
  static retryable(err: unknown): boolean {
    return AckRetry.retryableCode(ConnectError.from(err).code);
  }

  /** hold keeps an ack for a retry, merged with what is held for the same device. */
  hold(actor: Caller, conversations: ConversationPosition[]): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const c of conversations) {
      this.#merge({
        actor,
        conversationId: c.conversationId,
        upTo: new Map(Object.entries(c.upTo?.seqs ?? {})),
        firstFailedMs: now,
        retried: false,
      });
    }
    this.#schedule();
  }

  /** close stops retrying; what is held is dropped (clients ack again when they reconnect). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer || this.#flushing || this.#closed || this.#held.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, this.#delayMs);
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    const now = Date.now();
    const batch = [...this.#held.values()];
    this.#held.clear();
    // Given up only once too old and retried at least once: a stalled event loop or a long
    // backoff must not drop an ack that was never sent again.
    const tooOld = (h: Held) => h.retried && now - h.firstFailedMs > this.#o.maxAgeMs;
    const expired = batch.filter(tooOld);
    if (expired.length > 0) {
      this.#o.log.warn(
        { acks: expired.length, maxAgeMs: this.#o.maxAgeMs },
        "giving up delivery acks that kept failing",
      );
    }
    const live = batch.filter((h) => !tooOld(h));
    for (const h of live) h.retried = true;
    // One item per device, at most 256 conversations each (the RPC's limit).
    const items: Array<{ item: Item; held: Held[] }> = [];
    const byDevice = new Map<string, Held[]>();
    for (const h of live) {
      const k = `${h.actor.userId}\u0000${h.actor.deviceId}`;
      byDevice.set(k, [...(byDevice.get(k) ?? []), h]);
    }
    for (const list of byDevice.values()) {
      for (let i = 0; i < list.length; i += 256) {
        const part = list.slice(i, i + 256);
        items.push({
          held: part,
          item: {
            actor: (part[0] as Held).actor,
            conversations: part.map((h) => ({
              conversationId: h.conversationId,
              upTo: { seqs: Object.fromEntries(h.upTo) },
            })),
          },
        });
      }
    }
    let failed = false;
    for (let i = 0; i < items.length; i += 500) {
      const chunk = items.slice(i, i + 500);
      try {
        const outcomes = await this.#o.send(chunk.map((c) => c.item));
        chunk.forEach((c, j) => {
          const error = outcomes[j]?.error;
          if (!error) return;
          if (AckRetry.retryableCode(error.code as number as Code)) {
            failed = true;
            for (const h of c.held) this.#merge(h);
          } else {
            this.#o.log.warn({ code: error.code, message: error.message }, "delivery ack refused");
          }
        });
      } catch (err) {
        if (!AckRetry.retryable(err)) {
          this.#o.log.warn({ err }, "delivery acks refused");
          continue;
        }
        failed = true;
        for (const c of chunk) for (const h of c.held) this.#merge(h);
      }
    }
    this.#delayMs = failed ? Math.min(this.#o.maxDelayMs, this.#delayMs * 2) : this.#o.firstDelayMs;
    this.#flushing = false;
    this.#schedule();
  }

  /**
   * merge adds an ack to the held set: with one already held for the same device and
   * conversation, the greater position per region wins and the older failure time stays.
   */
  #merge(h: Held): void {
    const key = `${h.actor.userId}\u0000${h.actor.deviceId}\u0000${h.conversationId}`;
    const held = this.#held.get(key);
    if (!held) {
      this.#held.set(key, h);
      return;
    }
    for (const [region, seq] of h.upTo) {
      if (seq > (held.upTo.get(region) ?? 0n)) held.upTo.set(region, seq);
    }
    held.firstFailedMs = Math.min(held.firstFailedMs, h.firstFailedMs);
    held.retried &&= h.retried;
  }
}
