import type { InboxEntry, Message } from "../gen/chat/v1/types_pb.ts";

/**
 * InboxTracker turns the inbox entries a device receives (live and replayed, in any order,
 * possibly twice) into the exact stream the app should see: per region in seq order, each
 * entry once, nothing skipped.
 *
 * It keeps, per region, the contiguous seq reached (the version vector presented on resume)
 * and holds back entries that arrive beyond a gap until the gap is filled. Copies of one send
 * made in two regions (a retry that crossed regions, or a message delivered by a region that
 * took over a dead one's backlog) are shown once: the first to arrive. A later copy that sorts
 * earlier in display order is reported by `moved`, so an app can show every send where its
 * lowest copy is, as history does.
 */
export class InboxTracker {
  readonly #contiguous = new Map<string, bigint>();
  readonly #held = new Map<string, Map<bigint, InboxEntry>>();
  readonly #sends = new Set<string>();
  /** send → display position of the copy shown, for sends shown in this run. */
  readonly #shownAt = new Map<string, OrderKey>();
  #copies: Array<{ message: Message; moved: boolean }> = [];
  readonly #maxRemembered: number;

  /**
   * `opts.seen` restores the send identities of an earlier run (from `seen()`), so a copy that
   * arrives after a restart is still recognised.
   */
  constructor(
    initial: Map<string, bigint> = new Map(),
    opts: { maxRemembered?: number; seen?: Iterable<string> } = {},
  ) {
    for (const [r, s] of initial) this.#contiguous.set(r, s);
    this.#maxRemembered = opts.maxRemembered ?? 10_000;
    for (const key of opts.seen ?? []) this.#remember(key);
  }

  /** seen lists the identities of the sends already shown, oldest first (at most maxRemembered). */
  seen(): string[] {
    return [...this.#sends];
  }

  /** vector is the contiguous position per region: what to present when resuming. */
  vector(): Map<string, bigint> {
    return new Map(this.#contiguous);
  }

  /** hasGap is true while entries are held back waiting for earlier ones. */
  hasGap(): boolean {
    for (const held of this.#held.values()) if (held.size > 0) return true;
    return false;
  }

  /** behind is true when `head` (from a sync_state) is ahead of what arrived contiguously. */
  behind(head: Map<string, bigint>): boolean {
    for (const [region, seq] of head) if ((this.#contiguous.get(region) ?? 0n) < seq) return true;
    return false;
  }

  /**
   * skipTo moves past entries the server no longer has (they expired before this device got
   * them) and returns the held messages that this releases, in order.
   */
  skipTo(expired: Map<string, bigint>): Message[] {
    const released: Message[] = [];
    for (const [region, seq] of expired) {
      if ((this.#contiguous.get(region) ?? 0n) >= seq) continue;
      this.#contiguous.set(region, seq);
      const held = this.#held.get(region);
      for (const s of [...(held?.keys() ?? [])]) if (s <= seq) held?.delete(s);
      released.push(...this.#drain(region));
    }
    return released;
  }

  #drain(region: string): Message[] {
    const released: Message[] = [];
    const held = this.#held.get(region);
    if (!held) return released;
    let at = this.#contiguous.get(region) ?? 0n;
    for (let next = held.get(at + 1n); next; next = held.get(at + 1n)) {
      held.delete(at + 1n);
      at++;
      const m = next.message;
      if (m && this.#firstCopy(m)) released.push(m);
    }
    this.#contiguous.set(region, at);
    return released;
  }

  /**
   * accept takes received entries and returns the messages now released, in order. Entries at
   * or below the contiguous position are duplicates and dropped.
   */
  accept(entries: InboxEntry[]): Message[] {
    const released: Message[] = [];
    const touched = new Set<string>();
    for (const e of entries) {
      const at = this.#contiguous.get(e.region) ?? 0n;
      if (e.seq <= at) continue;
      let held = this.#held.get(e.region);
      if (!held) {
        held = new Map();
        this.#held.set(e.region, held);
      }
      held.set(e.seq, e);
      touched.add(e.region);
    }
    for (const region of touched) released.push(...this.#drain(region));
    return released;
  }

  /**
   * takeCopies returns, once, the copies released in place of a message (their send was shown
   * already): they are acknowledged like any delivery. `moved` marks a copy that sorts before
   * the one shown: the app should move the shown message to this copy's position.
   */
  takeCopies(): Array<{ message: Message; moved: boolean }> {
    const copies = this.#copies;
    this.#copies = [];
    return copies;
  }

  #firstCopy(m: Message): boolean {
    const key = `${m.conversationId}\u0000${m.senderId}\u0000${m.clientMsgId}`;
    const at = { hlc: m.hlc, region: m.originRegion, seq: m.seq };
    if (this.#sends.has(key)) {
      const shown = this.#shownAt.get(key);
      const moved = shown !== undefined && before(at, shown);
      if (moved) this.#shownAt.set(key, at);
      this.#copies.push({ message: m, moved });
      return false;
    }
    this.#remember(key);
    this.#shownAt.set(key, at);
    return true;
  }

  #remember(key: string): void {
    this.#sends.delete(key);
    this.#sends.add(key);
    if (this.#sends.size > this.#maxRemembered) {
      const oldest = this.#sends.values().next().value as string;
      this.#sends.delete(oldest);
      this.#shownAt.delete(oldest);
    }
  }
}

interface OrderKey {
  hlc: bigint;
  region: string;
  seq: bigint;
}

/** before orders display positions as the server does: by hlc, then origin region, then seq. */
function before(a: OrderKey, b: OrderKey): boolean {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc;
  if (a.region !== b.region) return a.region < b.region;
  return a.seq < b.seq;
}
