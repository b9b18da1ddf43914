import { clone, create } from "@bufbuild/protobuf";
import {
  type InboxEntry,
  InboxEntrySchema,
  type Message,
  MessageSchema,
} from "../../../../gen/chat/v1/types_pb.ts";
import { keys } from "../../item-keys.ts";
import type { InboxStore } from "../../ports/inbox-store.ts";
import type { Vector } from "../../version-vector.ts";
import { ChangeListeners, foreignRegion, type ItemChange, type Replica } from "./replica.ts";

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
 * default) a long-running local process grows with its traffic. As a Replica it reports what it
 * writes and takes other regions' inboxes (dev/replication).
 */
export class MemoryInboxStore implements InboxStore, Replica {
  readonly region: string;
  /** user → region → inbox */
  readonly #inboxes = new Map<string, Map<string, RegionInbox>>();
  /** user\0inbox region\0conversation\0origin region\0seq → inbox seq */
  readonly #index = new Map<string, bigint>();
  readonly #changes = new ChangeListeners();
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
      const key = indexKey(userId, this.region, message);
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
      const pk = keys.inbox(userId, this.region);
      this.#changes.emit(pk, keys.inboxHead(), () => seq);
      this.#changes.emit(pk, keys.inboxEntry(seq), () => ({
        entry: clone(InboxEntrySchema, entry),
        atMs: now,
      }));
      this.#changes.emit(
        pk,
        keys.inboxDedup(message.conversationId, message.originRegion, message.seq),
        () => seq,
      );
      return clone(InboxEntrySchema, entry);
    });
  }

  onChange(listener: (change: ItemChange) => void): () => void {
    return this.#changes.add(listener);
  }

  /**
   * applyReplicated makes another region's inbox item visible here, as Global Table
   * replication does (in any order): entries become readable up to the first hole.
   */
  applyReplicated(change: ItemChange): void {
    const region = foreignRegion(this.region, change);
    const [, userId] = change.pk.split("#") as [string, string];
    const inbox = this.#inbox(userId, region);
    const [kind, ...rest] = change.sk.split("#");
    if (kind === "e") {
      const stored = change.value as Stored;
      inbox.entries.set(stored.entry.seq, {
        entry: clone(InboxEntrySchema, stored.entry),
        atMs: stored.atMs,
      });
    } else if (kind === "head") {
      inbox.head = change.value as bigint;
    } else if (kind === "x") {
      const [conversationId, originRegion, seq] = rest as [string, string, string];
      this.#index.set(
        indexKey(userId, region, { conversationId, originRegion, seq: BigInt(seq) }),
        change.value as bigint,
      );
    } else {
      throw new Error(`MemoryInboxStore cannot hold item ${change.pk} / ${change.sk}`);
    }
  }

  items(): ItemChange[] {
    const out: ItemChange[] = [];
    for (const [userId, byRegion] of this.#inboxes) {
      for (const [region, inbox] of byRegion) {
        const pk = keys.inbox(userId, region);
        if (inbox.head > 0n) out.push({ pk, sk: keys.inboxHead(), value: inbox.head });
        for (const [seq, stored] of inbox.entries) {
          out.push({ pk, sk: keys.inboxEntry(seq), value: stored });
        }
      }
    }
    for (const [key, seq] of this.#index) {
      const [userId, region, c, origin, m] = key.split("\u0000") as [
        string,
        string,
        string,
        string,
        string,
      ];
      out.push({
        pk: keys.inbox(userId, region),
        sk: keys.inboxDedup(c, origin, BigInt(m)),
        value: seq,
      });
    }
    return out;
  }

  async read(userId: string, after: Vector, limit: number) {
    const now = this.#now();
    const entries: InboxEntry[] = [];
    const head: Vector = new Map();
    const expired: Vector = new Map();
    let more = false;
    for (const [region, inbox] of this.#inboxes.get(userId) ?? []) {
      let seq = after.get(region) ?? 0n;
      const last = lastKnown(inbox, seq);
      if (seq > last) {
        // Beyond the inbox: nothing to send, and the head says where it really ends.
        if (last > 0n) head.set(region, last);
        continue;
      }
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

/**
 * lastKnown is the highest seq known to exist in an inbox, when `from` is beyond its head item:
 * replicated entries can arrive before the head item that covers them, and an entry proves that
 * every seq below it exists too (seqs are dense where they are written).
 */
function lastKnown(inbox: RegionInbox, from: bigint): bigint {
  if (from <= inbox.head) return inbox.head;
  let last = inbox.head;
  for (const seq of inbox.entries.keys()) if (seq > last) last = seq;
  return last;
}

function indexKey(
  userId: string,
  inboxRegion: string,
  m: { conversationId: string; originRegion: string; seq: bigint },
): string {
  return `${userId}\u0000${inboxRegion}\u0000${m.conversationId}\u0000${m.originRegion}\u0000${m.seq}`;
}
