import type { Client } from "@connectrpc/connect";
import type { Context } from "@opentelemetry/api";
import type { MessageStored } from "../../gen/chat/v1/events_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { Batcher, inChunks } from "../shared/batcher.ts";
import type { Fanout } from "../shared/fanout.ts";
import type { Bus } from "../shared/ports/bus.ts";
import { inContext } from "../shared/tracing.ts";
import type { MessagingHooks } from "./handler.ts";
import { InboxDelivery, type Routed, recipientsOf } from "./inbox-delivery.ts";

/** RouterDeps are what routing needs. */
export interface RouterDeps {
  region: string;
  persistence: Client<typeof PersistenceService>;
  bus: Pick<Bus, "publish">;
  fanout: Fanout;
  hooks?: Pick<MessagingHooks, "afterInboxAppend">;
  /** cursorCacheSize bounds the routing cursors kept in memory. */
  cursorCacheSize?: number;
}

type Cursor = { conversationId: string; seq: bigint };
const GAP_READ = 500n;

/**
 * Router routes this region's stored messages (DESIGN.md §4.3): for every recipient it
 * appends the message to the recipient's inbox, hands it to the gateways holding the
 * recipient's sockets here, and publishes inbox.appended for other regions and for push.
 *
 * Messages of a conversation are routed strictly in seq order, even when their
 * message.stored events arrive out of order (two concurrent sends publish in either order) or
 * never arrive (a sender died between persisting and publishing): a message beyond the
 * conversation's routing cursor first routes the ones it skips, read back from the log. So
 * every inbox holds a conversation's messages in seq order, and clients following their dense
 * inbox seqs see no gap and no reorder. Everything here is idempotent under redelivery.
 */
export class Router {
  readonly #d: RouterDeps;
  readonly #cursors = new Map<string, bigint>();
  readonly #cacheSize: number;
  // Partitions are routed concurrently; their inbox appends and cursor writes made while one
  // call is in flight go together in the next, so a busy region makes few, large calls.
  readonly #inboxes: InboxDelivery;
  readonly #cursorWrites: Batcher<Cursor[], undefined>;

  constructor(deps: RouterDeps) {
    this.#d = deps;
    this.#cacheSize = deps.cursorCacheSize ?? 100_000;
    this.#inboxes = new InboxDelivery(deps);
    this.#cursorWrites = new Batcher({
      name: "routed seq write",
      maxBatch: 100,
      maxInflight: 1,
      run: async (lists) => {
        await inChunks(lists.flat(), async (cursors) => {
          await deps.persistence.batchWriteRoutedSeqs({ cursors });
          return [];
        });
        return lists.map(() => undefined);
      },
    });
  }

  /**
   * route routes a batch of message.stored events, in order. `traces` are the events' own
   * trace contexts (tracing on): the reads made for one message (its cursor, the gap before
   * it) continue its trace; the appends and deliveries, shared by the batch, run in the
   * caller's context, which links to every event's (see tracing.ts, "Batching").
   */
  async route(
    events: MessageStored[],
    traces: ReadonlyArray<Context | undefined> = [],
  ): Promise<void> {
    const plan: Routed[] = [];
    const advanced = new Map<string, bigint>();
    for (const [i, ev] of events.entries()) {
      const m = ev.message;
      if (!m || m.originRegion !== this.#d.region) continue;
      const routed =
        advanced.get(m.conversationId) ??
        (await inContext(traces[i], () => this.#cursor(m.conversationId)));
      if (m.seq <= routed) continue; // redelivered, or already routed as part of a gap
      if (m.seq > routed + 1n) {
        plan.push(
          ...(await inContext(traces[i], () => this.#gap(m.conversationId, routed, m.seq))),
        );
      }
      plan.push({ message: m, recipientIds: ev.recipientIds });
      advanced.set(m.conversationId, m.seq);
    }
    if (plan.length === 0) return;
    // A message another region delivered while this one was down (takeover.ts) is routed
    // again all the same: leaving it out would put a hole in this region's inbox order, and a
    // device would see the messages after it first. Devices collapse the copies.
    await this.#inboxes.deliver(plan);
    await this.#cursorWrites.add(
      [...advanced].map(([conversationId, seq]) => ({ conversationId, seq })),
    );
    for (const [conversationId, seq] of advanced) this.#remember(conversationId, seq);
  }

  async #cursor(conversationId: string): Promise<bigint> {
    const cached = this.#cursors.get(conversationId);
    if (cached !== undefined) return cached;
    const res = await this.#d.persistence.readRoutedSeq({ conversationId });
    this.#remember(conversationId, res.seq);
    return res.seq;
  }

  /** gap reads the messages between the cursor and `seq` and their recipients (current members). */
  async #gap(conversationId: string, routed: bigint, seq: bigint) {
    const out: Routed[] = [];
    const { conversation } = await this.#d.persistence.readConversation({ conversationId });
    const members = conversation?.memberIds ?? [];
    let after = routed;
    while (after < seq - 1n) {
      const { messages } = await this.#d.persistence.readMessages({
        conversationId,
        originRegion: this.#d.region,
        afterSeq: after,
        limit: Number(seq - 1n - after < GAP_READ ? seq - 1n - after : GAP_READ),
      });
      if (messages.length === 0) break;
      for (const message of messages) {
        if (message.seq >= seq) break;
        out.push({ message, recipientIds: recipientsOf(message, members) });
        after = message.seq;
      }
    }
    return out;
  }

  #remember(conversationId: string, seq: bigint) {
    if ((this.#cursors.get(conversationId) ?? 0n) > seq) return;
    this.#cursors.delete(conversationId);
    this.#cursors.set(conversationId, seq);
    if (this.#cursors.size > this.#cacheSize) {
      const oldest = this.#cursors.keys().next().value as string;
      this.#cursors.delete(oldest);
    }
  }
}
