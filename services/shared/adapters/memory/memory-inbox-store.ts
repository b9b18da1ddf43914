import { create } from "@bufbuild/protobuf";
import {
  type InboxEntry,
  InboxEntrySchema,
  type Message,
} from "../../../../gen/chat/v1/types_pb.ts";
import { copyMessage } from "../../copy-message.ts";
import { keys } from "../../item-keys.ts";
import type { InboxStore } from "../../ports/inbox-store.ts";
import type { Vector } from "../../version-vector.ts";
import { AgeBuckets } from "./age-buckets.ts";
import { EntryLog, type Kept } from "./entry-log.ts";
import { ChangeListeners, foreignRegion, type ItemChange, type Replica } from "./replica.ts";

/** Stored is an inbox entry as the change stream carries it (dev/replication). */
interface Stored {
  entry: InboxEntry;
  atMs: number;
}

/** Held is the one stored copy of a message, its dedup key, and how many entries hold it. */
interface Held {
  message: Message;
  /** key is indexKey(message), one string for every inbox that indexes the message */
  key: string;
  entries: number;
}

interface RegionInbox {
  /**
   * the entries by seq, each with the one message copy every inbox holding it shares; dense for
   * the own region, possibly holed for replicated ones
   */
  entries: EntryLog;
  head: bigint;
  /** dropped is the last seq the window dropped: reads after a position before it say expired. */
  dropped: bigint;
  /** conversation\0origin region\0seq → inbox seq: the dedup items, one per message */
  index: Map<string, number>;
}

/** MemoryInboxStoreOptions bound what the store keeps; unbounded by default. */
export interface MemoryInboxStoreOptions {
  /** retentionMs is how long an entry is kept (DynamoDB's TTL: INBOX_RETENTION_DAYS). */
  retentionMs?: number;
  /** maxEntries is how many entries of each user's inbox (per region) are kept, the newest. */
  maxEntries?: number;
  now?: () => number;
}

/**
 * MemoryInboxStore keeps users' inboxes in this process's memory (the embedded default). With
 * a retention, entries older than it are gone, as DynamoDB's TTL makes them, and with
 * maxEntries only each inbox's newest are kept; without either (the default) a long-running
 * local process grows with its traffic. Either way entries go oldest first with their dedup
 * items, and a read after a position that was dropped says so (`expired`), as the protocol
 * tells a device that was away too long. Dropping needs no scan: an inbox is trimmed when it is
 * written or read, and when the age bucket of its entries passes (see AgeBuckets). As a Replica
 * it reports what it writes and takes other regions' inboxes (dev/replication).
 */
export class MemoryInboxStore implements InboxStore, Replica {
  readonly region: string;
  /** user → region → inbox */
  readonly #inboxes = new Map<string, Map<string, RegionInbox>>();
  /**
   * conversation\0origin\0seq → the one stored copy of a message and how many entries hold
   * it: a message goes to every member's inbox, and a copy each would cost its size each time.
   */
  readonly #messages = new Map<string, Held>();
  readonly #changes = new ChangeListeners();
  readonly #retentionMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** ages says which inboxes (user\0region) got entries when (only with a retention) */
  readonly #ages: AgeBuckets | undefined;

  constructor(region: string, opts: MemoryInboxStoreOptions = {}) {
    this.region = region;
    this.#retentionMs = opts.retentionMs ?? Number.POSITIVE_INFINITY;
    this.#maxEntries = opts.maxEntries ?? Number.POSITIVE_INFINITY;
    this.#now = opts.now ?? Date.now;
    if (Number.isFinite(this.#retentionMs)) this.#ages = new AgeBuckets(this.#retentionMs);
  }

  async append(items: Array<{ userId: string; message: Message }>): Promise<InboxEntry[]> {
    const now = this.#now();
    this.#expireAged(now);
    return items.map(({ userId, message }) => {
      const key = indexKey(message);
      const inbox = this.#inbox(userId, this.region);
      const found = inbox.index.get(key);
      const existing = found === undefined ? undefined : BigInt(found);
      const stored = existing === undefined ? undefined : inbox.entries.get(existing);
      if (stored && existing !== undefined && !this.#expired(stored, now)) {
        return entryOf(this.region, existing, stored);
      }
      const seq = inbox.head + 1n;
      const held = this.#hold(message);
      const kept = { message: held.message, atMs: now };
      inbox.entries.set(seq, kept);
      inbox.head = seq;
      inbox.index.set(held.key, Number(seq));
      this.#ages?.add(inboxKey(userId, this.region), now);
      this.#trim(inbox, now);
      const pk = keys.inbox(userId, this.region);
      this.#changes.emit(pk, keys.inboxHead(), () => seq);
      this.#changes.emit(
        pk,
        keys.inboxEntry(seq),
        (): Stored => ({
          entry: entryOf(this.region, seq, kept),
          atMs: now,
        }),
      );
      this.#changes.emit(
        pk,
        keys.inboxDedup(message.conversationId, message.originRegion, message.seq),
        () => seq,
      );
      return entryOf(this.region, seq, kept);
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
      const { seq, message } = stored.entry;
      if (seq <= inbox.dropped || !message) return; // a late copy of one dropped here
      const before = inbox.entries.get(seq)?.message;
      const kept = { message: this.#hold(message).message, atMs: stored.atMs };
      if (before) this.#release(before);
      inbox.entries.set(seq, kept);
      const now = this.#now();
      this.#ages?.add(inboxKey(userId, region), stored.atMs);
      this.#trim(inbox, now);
      this.#expireAged(now);
    } else if (kind === "head") {
      inbox.head = change.value as bigint;
    } else if (kind === "x") {
      const [conversationId, originRegion, seq] = rest as [string, string, string];
      inbox.index.set(
        indexKey({ conversationId, originRegion, seq: BigInt(seq) }),
        Number(change.value as bigint),
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
        for (const [key, seq] of inbox.index) {
          const [c, origin, m] = key.split("\u0000") as [string, string, string];
          out.push({ pk, sk: keys.inboxDedup(c, origin, BigInt(m)), value: BigInt(seq) });
        }
      }
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
      // Skip what the window dropped: entries go oldest first, so a dropped entry means
      // everything before it is gone too.
      this.#trim(inbox, now);
      if (inbox.dropped > seq) {
        expired.set(region, inbox.dropped);
        seq = inbox.dropped;
      }
      while (inbox.entries.has(seq + 1n)) {
        if (entries.length >= limit) {
          more = true;
          break;
        }
        seq++;
        const kept = inbox.entries.get(seq) as Kept;
        // Replicated entries may arrive out of order, past the trim's reach: skip them all the same.
        if (this.#expired(kept, now)) expired.set(region, seq);
        else entries.push(entryOf(region, seq, kept));
      }
      let contiguous = seq;
      while (inbox.entries.has(contiguous + 1n)) contiguous++;
      if (contiguous > 0n) head.set(region, contiguous);
    }
    return { entries, head, more, expired };
  }

  #expired(kept: Kept, now: number): boolean {
    return kept.atMs + this.#retentionMs <= now;
  }

  /**
   * trim drops an inbox's oldest entries while it holds more than maxEntries or they are past
   * the retention, each with its dedup item (a redelivered message gets a new entry, as after
   * DynamoDB's TTL). `dropped` remembers the last, for reads to report as expired.
   */
  #trim(inbox: RegionInbox, now: number) {
    for (let first = inbox.entries.first(); first; first = inbox.entries.first()) {
      const [seq, kept] = first;
      if (inbox.entries.size <= this.#maxEntries && !this.#expired(kept, now)) return;
      inbox.entries.dropFirst();
      if (seq > inbox.dropped) inbox.dropped = seq;
      const m = kept.message;
      this.#release(m);
      const key = indexKey(m);
      if (inbox.index.get(key) === Number(seq)) inbox.index.delete(key);
    }
  }

  /**
   * hold returns the stored copy of a message (and its key) for one more entry (entries never
   * change it).
   */
  #hold(message: Message): Held {
    const key = indexKey(message);
    let held = this.#messages.get(key);
    if (!held) {
      held = { message: copyMessage(message), key, entries: 0 };
      this.#messages.set(key, held);
    }
    held.entries++;
    return held;
  }

  /** release lets go of a message for one entry; the last one drops the copy. */
  #release(message: Message) {
    const key = indexKey(message);
    const held = this.#messages.get(key);
    if (held && --held.entries === 0) this.#messages.delete(key);
  }

  /** expireAged trims the inboxes whose entries of a bucket now past the retention are due. */
  #expireAged(now: number) {
    this.#ages?.expire(now - this.#retentionMs, (key) => {
      const [userId, region] = key.split("\u0000") as [string, string];
      const inbox = this.#inboxes.get(userId)?.get(region);
      if (inbox) this.#trim(inbox, now);
    });
  }

  /** stats counts what the store holds: for tests, which check it stays within the window. */
  stats(): { entries: number; dedupKeys: number } {
    let entries = 0;
    let dedupKeys = 0;
    for (const byRegion of this.#inboxes.values()) {
      for (const inbox of byRegion.values()) {
        entries += inbox.entries.size;
        dedupKeys += inbox.index.size;
      }
    }
    return { entries, dedupKeys };
  }

  #inbox(userId: string, region: string): RegionInbox {
    let byRegion = this.#inboxes.get(userId);
    if (!byRegion) {
      byRegion = new Map();
      this.#inboxes.set(userId, byRegion);
    }
    let inbox = byRegion.get(region);
    if (!inbox) {
      inbox = { entries: new EntryLog(), head: 0n, dropped: 0n, index: new Map() };
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
  const last = inbox.entries.last();
  if (last > inbox.head) return last;
  return inbox.head;
}

/** entryOf is a kept entry as the store returns it: a copy, which callers may change. */
function entryOf(region: string, seq: bigint, kept: Kept): InboxEntry {
  return create(InboxEntrySchema, { region, seq, message: copyMessage(kept.message) });
}

function inboxKey(userId: string, region: string): string {
  return `${userId}\u0000${region}`;
}

/** indexKey names a message (in an inbox's dedup items, and among the stored copies). */
function indexKey(m: { conversationId: string; originRegion: string; seq: bigint }): string {
  return `${m.conversationId}\u0000${m.originRegion}\u0000${m.seq}`;
}
