import type { Client } from "@connectrpc/connect";
import type { InboxAppended } from "../../gen/chat/v1/events_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { type Message, ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../shared/logger.ts";
import { RetryLater } from "../shared/ports/bus.ts";
import { type PushProvider, platformName } from "./push/push-provider.ts";

/** PushSchedulerDeps are what push decisions need. */
export interface PushSchedulerDeps {
  persistence: Client<typeof PersistenceService>;
  provider: PushProvider;
  log: Logger;
  delayMs: number;
  now?: () => number;
}

const PREVIEW_CHARS = 120;

/**
 * PushScheduler sends a push notification when a message reached a recipient's inbox but no
 * device of the recipient acknowledged it within the push delay (DESIGN.md §4.7).
 *
 * It consumes inbox.appended deliberately late: a batch is handled once its newest record is
 * `delayMs` old (until then it goes back to the bus with RetryLater, which holds only its
 * partition). The check then survives restarts (an unhandled batch is redelivered), needs no
 * timers, and costs nothing for messages delivered in time beyond one receipts read per
 * conversation.
 */
export class PushScheduler {
  readonly #d: PushSchedulerDeps;
  readonly #now: () => number;

  constructor(deps: PushSchedulerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** handle decides and sends pushes for a batch appended at `appendedAtMs` (the newest). */
  async handle(events: InboxAppended[], appendedAtMs: number): Promise<number> {
    const wait = appendedAtMs + this.#d.delayMs - this.#now();
    // Not yet due: the bus hands the batch back when it is, holding only this partition.
    if (wait > 0) throw new RetryLater(wait);

    // One note per user and conversation: the newest message stands for the rest.
    const newest = new Map<string, { userId: string; message: Message; count: number }>();
    for (const e of events) {
      const m = e.entry?.message;
      if (!m || m.senderId === e.userId || m.content.case !== "text") continue;
      const key = `${e.userId}\u0000${m.conversationId}`;
      const seen = newest.get(key);
      if (!seen) newest.set(key, { userId: e.userId, message: m, count: 1 });
      else {
        seen.count++;
        if (m.seq > seen.message.seq) seen.message = m;
      }
    }
    let sent = 0;
    const delivered = new Map<string, Promise<Map<string, Record<string, bigint>>>>();
    for (const { userId, message, count } of newest.values()) {
      let receipts = delivered.get(message.conversationId);
      if (!receipts) {
        receipts = this.#deliveredReceipts(message.conversationId);
        delivered.set(message.conversationId, receipts);
      }
      const upTo = (await receipts).get(userId)?.[message.originRegion] ?? 0n;
      if (upTo >= BigInt(message.seq)) continue;
      sent += await this.#push(userId, message, count);
    }
    return sent;
  }

  async #deliveredReceipts(conversationId: string) {
    const { receipts } = await this.#d.persistence.readReceipts({ conversationId });
    const out = new Map<string, Record<string, bigint>>();
    for (const r of receipts) {
      if (r.kind === ReceiptKind.DELIVERED) out.set(r.userId, r.upTo?.seqs ?? {});
    }
    return out;
  }

  async #push(userId: string, message: Message, count: number): Promise<number> {
    const { tokens } = await this.#d.persistence.listPushTokens({ userId });
    let sent = 0;
    for (const t of tokens) {
      if (!this.#d.provider.platforms.includes(t.platform)) continue;
      const text = message.content.case === "text" ? message.content.value : "";
      const outcome = await this.#d.provider.send(
        { platform: t.platform, token: t.token },
        {
          title: message.senderId,
          body:
            count > 1
              ? `${count} new messages`
              : text.length > PREVIEW_CHARS
                ? `${text.slice(0, PREVIEW_CHARS)}…`
                : text,
          conversationId: message.conversationId,
          collapseKey: message.conversationId,
          data: {
            conversation_id: message.conversationId,
            origin_region: message.originRegion,
            seq: String(message.seq),
          },
        },
      );
      if (outcome === "sent") sent++;
      else if (outcome === "invalid-token") {
        await this.#d.persistence.deletePushToken({ userId, deviceId: t.deviceId });
        this.#d.log.info(
          { userId, deviceId: t.deviceId, platform: platformName(t.platform) },
          "forgot a dead push token",
        );
      } else {
        this.#d.log.warn({ userId, deviceId: t.deviceId }, "push failed");
      }
    }
    return sent;
  }
}
