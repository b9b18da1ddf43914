import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import type { InboxEntry, Message } from "../../gen/chat/v1/types_pb.ts";
import { Batcher, inChunks } from "../shared/batcher.ts";
import type { Fanout, Push } from "../shared/fanout.ts";
import type { Bus } from "../shared/ports/bus.ts";
import { publishEvents, TOPICS } from "../shared/topics.ts";
import type { MessagingHooks } from "./handler.ts";

type InboxItem = { userId: string; message: Message };

/** Routed is a message with the users it goes to. */
export interface Routed {
  message: Message;
  recipientIds: string[];
}

/**
 * InboxDelivery is the last part of routing (DESIGN.md §4.3): it appends messages to their
 * recipients' inboxes in this region (idempotently: a redelivered message gets its existing
 * entry), hands the entries to the recipients' devices connected here, and publishes
 * inbox.appended, which other regions deliver to their devices and notification pushes from.
 * Appends made while one call is in flight go together in the next.
 */
export class InboxDelivery {
  readonly #fanout: Fanout;
  readonly #bus: Pick<Bus, "publish">;
  readonly #appends: Batcher<InboxItem[], InboxEntry[]>;
  readonly #afterInboxAppend: ((entries: InboxEntry[]) => Promise<void>) | undefined;

  constructor(deps: {
    persistence: Client<typeof PersistenceService>;
    bus: Pick<Bus, "publish">;
    fanout: Fanout;
    hooks?: Pick<MessagingHooks, "afterInboxAppend">;
  }) {
    this.#afterInboxAppend = deps.hooks?.afterInboxAppend;
    this.#fanout = deps.fanout;
    this.#bus = deps.bus;
    this.#appends = new Batcher({
      name: "inbox append",
      maxBatch: 100,
      maxInflight: 1,
      run: async (lists) => {
        const entries = await inChunks(
          lists.flat(),
          async (items) => (await deps.persistence.appendInbox({ items })).entries,
        );
        const out: InboxEntry[][] = [];
        for (const list of lists) out.push(entries.splice(0, list.length));
        return out;
      },
    });
  }

  /** deliver routes messages, in order, to every recipient's inbox and connected devices. */
  async deliver(plan: Routed[]): Promise<void> {
    const items = plan.flatMap((p) =>
      p.recipientIds.map((userId) => ({ userId, message: p.message })),
    );
    if (items.length === 0) return;
    const entries = await this.#appends.add(items);
    await this.#afterInboxAppend?.(entries);
    const byUser = new Map<string, InboxEntry[]>();
    entries.forEach((entry, i) => {
      const userId = items[i]?.userId as string;
      const list = byUser.get(userId) ?? [];
      list.push(entry);
      byUser.set(userId, list);
    });
    const pushes: Push[] = [...byUser].map(([userId, list]) => ({
      userIds: [userId],
      frame: create(ServerFrameSchema, {
        kind: { case: "deliveries", value: { entries: list, replay: false } },
      }),
    }));
    await this.#fanout.push(pushes);
    await publishEvents(
      this.#bus,
      TOPICS.inboxAppended,
      entries.map((entry, i) => {
        const userId = items[i]?.userId as string;
        return { key: userId, value: { userId, entry } };
      }),
    );
  }
}

/** recipientsOf returns who a message goes to: the members, plus those a membership change names. */
export function recipientsOf(message: Message, memberIds: readonly string[]): string[] {
  const changed = message.content.case === "membership" ? message.content.value.userIds : [];
  return [...new Set([...memberIds, ...changed])];
}
