import type { Client } from "@connectrpc/connect";
import type { InboxAppended } from "../../gen/chat/v1/events_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { type Message, ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { inChunks } from "../shared/batcher.ts";
import type { Logger } from "../shared/logger.ts";
import { RetryLater } from "../shared/ports/bus.ts";
import { DEFAULT_MAX_PUSH_DEVICES, newestTokens } from "./push/device-cap.ts";
import { type PushProvider, platformName } from "./push/push-provider.ts";

/** PushSchedulerDeps are what push decisions need. */
export interface PushSchedulerDeps {
  persistence: Client<typeof PersistenceService>;
  provider: PushProvider;
  log: Logger;
  delayMs: number;
  /**
   * maxDevicesPerUser bounds the pushes one message costs per recipient: only the most
   * recently registered tokens are pushed to (MAX_PUSH_DEVICES_PER_USER).
   */
  maxDevicesPerUser?: number;
  now?: () => number;
}

const PREVIEW_CHARS = 120;
/** RETRY_GRANULARITY_MS is the shortest wait between two looks at a partition's backlog. */
export const RETRY_GRANULARITY_MS = 1_000;

/** AppendedEvent is an inbox append and when it was published. */
export interface AppendedEvent {
  event: InboxAppended;
  appendedAtMs: number;
}

/**
 * PushScheduler sends a push notification when a message reached a recipient's inbox but no
 * device of the recipient acknowledged it within the push delay (DESIGN.md §4.7).
 *
 * A push is claimed (ChatStore.claimPush) before it is sent, so neither a redelivered record
 * nor another region delivering the same message pushes it again.
 *
 * It consumes inbox.appended deliberately late: the records of a batch that are `delayMs` old
 * are handled, and the rest go back to the bus with RetryLater (which commits the handled
 * ones and holds only this partition) until they are due; its consumer holds them back
 * undecoded (consumeEvents' dueAtMs), so a backlog of appends waiting for their time costs
 * nothing per look. The check then survives restarts
 * (an unhandled record is redelivered), needs no timers, and costs nothing for messages
 * delivered in time beyond one receipts read per batch. Handling the due part first
 * matters under steady traffic: a batch always ends with a fresh record, and waiting for the
 * whole batch would put pushes off for as long as the traffic lasts.
 */
export class PushScheduler {
  readonly #d: PushSchedulerDeps;
  readonly #now: () => number;

  constructor(deps: PushSchedulerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** dueAtMs is when an append published at appendedAtMs is looked at. */
  dueAtMs(appendedAtMs: number): number {
    return appendedAtMs + this.#d.delayMs;
  }

  /**
   * handle decides and sends pushes for a batch of appends, in append order, and returns how
   * many it sent. When some are not yet due it handles those before them and then throws
   * RetryLater for the rest.
   */
  async handle(batch: AppendedEvent[]): Promise<number> {
    const now = this.#now();
    const due = batch.findIndex((b) => b.appendedAtMs + this.#d.delayMs > now);
    if (due === -1) return this.#handleDue(batch.map((b) => b.event));
    const wait = (batch[due] as AppendedEvent).appendedAtMs + this.#d.delayMs - now;
    if (due > 0) await this.#handleDue(batch.slice(0, due).map((b) => b.event));
    // Under steady traffic the next record is due within milliseconds; coming back for each
    // one would decode the batch again every few milliseconds. A second's worth at a time.
    throw new RetryLater(Math.max(wait, RETRY_GRANULARITY_MS), due);
  }

  async #handleDue(events: InboxAppended[]): Promise<number> {
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
    if (newest.size === 0) return 0;
    const delivered = await this.#deliveredReceipts([
      ...new Set([...newest.values()].map((n) => n.message.conversationId)),
    ]);
    let sent = 0;
    for (const { userId, message, count } of newest.values()) {
      const upTo =
        delivered.get(`${message.conversationId}\u0000${userId}`)?.[message.originRegion] ?? 0n;
      if (upTo >= BigInt(message.seq)) continue;
      sent += await this.#push(userId, message, count);
    }
    return sent;
  }

  /** deliveredReceipts reads the delivered receipts of conversations, by conversation and user. */
  async #deliveredReceipts(conversationIds: string[]) {
    const receipts = await inChunks(
      conversationIds,
      async (ids) =>
        (
          await this.#d.persistence.batchReadReceipts({
            conversationIds: ids,
            kind: ReceiptKind.DELIVERED,
          })
        ).receipts,
    );
    const out = new Map<string, Record<string, bigint>>();
    for (const r of receipts) {
      if (r.kind === ReceiptKind.DELIVERED) {
        out.set(`${r.conversationId}\u0000${r.userId}`, r.upTo?.seqs ?? {});
      }
    }
    return out;
  }

  async #push(userId: string, message: Message, count: number): Promise<number> {
    // Exactly one push per message and user, whatever redelivers it and whichever region
    // delivers it: the claim is durable, written before sending, and seen by every region.
    const { claimed } = await this.#d.persistence.claimPush({
      userId,
      conversationId: message.conversationId,
      originRegion: message.originRegion,
      seq: message.seq,
    });
    if (!claimed) return 0;
    const { tokens } = await this.#d.persistence.listPushTokens({ userId });
    // Registration evicts beyond the cap, but registrations racing in two regions can leave a
    // few more for a while: the cap holds here whatever the store has.
    const max = this.#d.maxDevicesPerUser ?? DEFAULT_MAX_PUSH_DEVICES;
    let sent = 0;
    for (const t of newestTokens(tokens, max)) {
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
