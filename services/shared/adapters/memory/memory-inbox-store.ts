import { clone, create } from "@bufbuild/protobuf";
import {
  type InboxEntry,
  InboxEntrySchema,
  type Message,
  MessageSchema,
} from "../../../../gen/chat/v1/types_pb.ts";
import type { InboxStore } from "../../ports/inbox-store.ts";
import type { Vector } from "../../version-vector.ts";

interface Stored {
  entry: InboxEntry;
  atMs: number;
}

interface RegionInbox {
  /** seq → entry; dense for the own region, possibly holed for replicated ones. */
  entries: Map<bigint, Stored>;
  head: bigint;
}

/**
 * MemoryInboxStore keeps users' inboxes in this process's memory (the embedded default). With
 * a retention, entries older than it are gone, as DynamoDB's TTL makes them; without one (the
 * default) a long-running local process grows with its traffic.
 */
export class MemoryInboxStore implements InboxStore {
  readonly region: string;
  /** user → region → inbox */
  readonly #inboxes = new Map<string, Map<string, RegionInbox>>();
  /** user\0conversation\0origin region\0seq → inbox seq */
  readonly #index = new Map<string, bigint>();
  readonly #retentionMs: number;
  readonly #now: () => number;

  constructor(region: string, opts: { retentionMs?: number; now?: () => number } = {}) {
    this.region = region;
    this.#retentionMs = opts.retentionMs ?? Number.POSITIVE_INFINITY;
    this.#now = opts.now ?? Date.now;
  }

  async append(items: Array<{ userId: string; message: Message }>): Promise<InboxEntry[]> {
    const now = this.#now();
    return items.map(({ userId, message }) => {
      const key = `${userId}\u0000${message.conversationId}\u0000${message.originRegion}\u0000${message.seq}`;
      const inbox = this.#inbox(userId, this.region);
      const existing = this.#index.get(key);
      const stored = existing === undefined ? undefined : inbox.entries.get(existing);
      if (stored && !this.#expired(stored, now)) return clone(InboxEntrySchema, stored.entry);
      const seq = inbox.head + 1n;
      const entry = create(InboxEntrySchema, {
        region: this.region,
        seq,
        message: clone(MessageSchema, message),
      });
      inbox.entries.set(seq, { entry, atMs: now });
      inbox.head = seq;
      this.#index.set(key, seq);
      return clone(InboxEntrySchema, entry);
    });
  }

  /**
   * applyReplicated makes another region's entry visible here, as Global Table replication
   * does (in any order). For the local replicator and tests.
   */
  applyReplicated(userId: string, entry: InboxEntry, atMs = this.#now()): void {
    const inbox = this.#inbox(userId, entry.region);
    inbox.entries.set(entry.seq, { entry: clone(InboxEntrySchema, entry), atMs });
    if (entry.seq > inbox.head) inbox.head = entry.seq;
  }

  async read(userId: string, after: Vector, limit: number) {
    const now = this.#now();
    const entries: InboxEntry[] = [];
    const head: Vector = new Map();
    const expired: Vector = new Map();
    let more = false;
    for (const [region, inbox] of this.#inboxes.get(userId) ?? []) {
      let seq = after.get(region) ?? 0n;
      // Skip what retention removed: entries expire oldest first, so an expired entry means
      // everything before it is gone too.
      let skipped = seq;
      for (const [s, stored] of inbox.entries) {
        if (s <= seq || !this.#expired(stored, now)) continue;
        if (s > skipped) skipped = s;
      }
      if (skipped > seq) {
        expired.set(region, skipped);
        seq = skipped;
      }
      while (inbox.entries.has(seq + 1n)) {
        if (entries.length >= limit) {
          more = true;
          break;
        }
        seq++;
        entries.push(clone(InboxEntrySchema, (inbox.entries.get(seq) as Stored).entry));
      }
      let contiguous = seq;
      while (inbox.entries.has(contiguous + 1n)) contiguous++;
      if (contiguous > 0n) head.set(region, contiguous);
    }
    return { entries, head, more, expired };
  }

  #expired(stored: Stored, now: number): boolean {
    return stored.atMs + this.#retentionMs <= now;
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
