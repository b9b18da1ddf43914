import { clone, create } from "@bufbuild/protobuf";
import {
  type InboxEntry,
  InboxEntrySchema,
  type Message,
  MessageSchema,
} from "../../../../gen/chat/v1/types_pb.ts";
import type { InboxStore } from "../../ports/inbox-store.ts";
import type { Vector } from "../../version-vector.ts";

interface RegionInbox {
  /** seq → entry; dense from 1 for the own region, possibly holed for replicated ones. */
  entries: Map<bigint, InboxEntry>;
  head: bigint;
}

/**
 * MemoryInboxStore keeps users' inboxes in this process's memory (the embedded default). It
 * never expires entries: a long-running local process grows with its traffic.
 */
export class MemoryInboxStore implements InboxStore {
  readonly region: string;
  /** user → region → inbox */
  readonly #inboxes = new Map<string, Map<string, RegionInbox>>();
  /** user\0conversation\0origin region\0seq → inbox seq */
  readonly #index = new Map<string, bigint>();

  constructor(region: string) {
    this.region = region;
  }

  async append(items: Array<{ userId: string; message: Message }>): Promise<InboxEntry[]> {
    return items.map(({ userId, message }) => {
      const key = `${userId}\u0000${message.conversationId}\u0000${message.originRegion}\u0000${message.seq}`;
      const inbox = this.#inbox(userId, this.region);
      const existing = this.#index.get(key);
      if (existing !== undefined)
        return clone(InboxEntrySchema, inbox.entries.get(existing) as InboxEntry);
      const seq = inbox.head + 1n;
      const entry = create(InboxEntrySchema, {
        region: this.region,
        seq,
        message: clone(MessageSchema, message),
      });
      inbox.entries.set(seq, entry);
      inbox.head = seq;
      this.#index.set(key, seq);
      return clone(InboxEntrySchema, entry);
    });
  }

  async read(userId: string, after: Vector, limit: number) {
    const entries: InboxEntry[] = [];
    const head: Vector = new Map();
    let more = false;
    for (const [region, inbox] of this.#inboxes.get(userId) ?? []) {
      let seq = after.get(region) ?? 0n;
      while (inbox.entries.has(seq + 1n)) {
        if (entries.length >= limit) {
          more = true;
          break;
        }
        seq++;
        entries.push(clone(InboxEntrySchema, inbox.entries.get(seq) as InboxEntry));
      }
      let contiguous = seq;
      while (inbox.entries.has(contiguous + 1n)) contiguous++;
      head.set(region, contiguous);
    }
    return { entries, head, more };
  }

  #inbox(userId: string, region: string): RegionInbox {
    let byRegion = this.#inboxes.get(userId);
    if (!byRegion) {
      byRegion = new Map();
      this.#inboxes.set(userId, byRegion);
    }
    let inbox = byRegion.get(region);
    if (!inbox) {
      inbox = { entries: new Map(), head: 0n };
      byRegion.set(region, inbox);
    }
    return inbox;
  }
}
