import type { Message } from "../../../../gen/chat/v1/types_pb.ts";
import { copyMessage } from "../../copy-message.ts";
import { keys, writerRegionOf } from "../../item-keys.ts";
import {
  type AppendCommand,
  type ChatStore,
  type ConversationMeta,
  compareOrder,
  DuplicateSendError,
  type LogHead,
  latestMembership,
  type MembershipItem,
  type MessageRef,
  newestPushToken,
  type OrderKey,
  orderKeyOf,
  type ReceiptKindName,
  SeqConflictError,
  type StoredConversation,
  type StoredPushToken,
  type StoredReceipt,
} from "../../ports/chat-store.ts";
import { mergeMax, mergeVectors, type Vector } from "../../version-vector.ts";
import { AgeBuckets } from "./age-buckets.ts";
import { ChangeListeners, foreignRegion, type ItemChange, type Replica } from "./replica.ts";

interface OutboxItem {
  atMs: number;
  conversationId: string;
  seq: bigint;
}

/** UserIndexItem is a user's record of one conversation, as one region wrote it. */
interface UserIndexItem extends MembershipItem {
  meta: ConversationMeta;
}

interface SendItem {
  seq: bigint;
  atMs: number;
}

/** LogEntry is a message in a conversation's log, with when it was stored here. */
interface LogEntry {
  message: Message;
  atMs: number;
}

/** MemoryChatStoreOptions tune what the store keeps; every window is unbounded by default. */
export interface MemoryChatStoreOptions {
  /**
   * historyMessages is how many messages of each conversation are kept, the newest: older ones
   * are dropped once nothing needs them (see `#done`), with their dedup items and push claims.
   */
  historyMessages?: number;
  /** historyRetentionMs is how long a message is kept after it was stored here (same rule). */
  historyRetentionMs?: number;
  /** outboxRetentionMs is how long routing outbox entries are kept (an hour). */
  outboxRetentionMs?: number;
  /** sendDedupMs is how long a client_msg_id is remembered, at most (a week). */
  sendDedupMs?: number;
  now?: () => number;
}

/** OUTBOX_BUCKET_MS is the span of one bucket of the outbox, which is kept by time. */
const OUTBOX_BUCKET_MS = 60_000;

/**
 * MemoryChatStore keeps the chat database in this process's memory: the embedded default for
 * `npm start` and tests. It keeps every region's items apart exactly as the DynamoDB table
 * does, so the same merge-on-read code runs, and it is a Replica: it reports every item it
 * writes and takes other regions' items, as Global Table replication would (see
 * dev/replication). It holds only one process's data and loses it on exit. Stored messages are
 * copied in and out, so callers cannot alter what is stored.
 *
 * What it holds is a window, when configured (`MemoryChatStoreOptions`): per conversation, the
 * newest `historyMessages` messages stored within `historyRetentionMs`, as a contiguous newest
 * part of the log, so history ends where the window does. A message routing still needs is
 * never dropped. Dropping needs no scan: a conversation is trimmed when it is written or routed,
 * and when the age bucket of its messages passes (see AgeBuckets). Unrouted messages are kept
 * apart from the outbox, so the sweeper's scan looks at them only, never at routed history.
 */
export class MemoryChatStore implements ChatStore, Replica {
  readonly region: string;
  /** conversation → region → metadata */
  readonly #meta = new Map<string, Map<string, ConversationMeta>>();
  /** conversation → user → region → membership */
  readonly #members = new Map<string, Map<string, Map<string, MembershipItem>>>();
  /** user → conversation → region → membership with metadata (the user's index) */
  readonly #memberships = new Map<string, Map<string, Map<string, UserIndexItem>>>();
  /** conversation → region → head */
  readonly #heads = new Map<string, Map<string, LogHead>>();
  /** conversation → messages of all regions in display order (the window, when bounded) */
  readonly #logs = new Map<string, LogEntry[]>();
  /** conversation\0region → seq → message */
  readonly #bySeq = new Map<string, Map<bigint, Message>>();
  /** conversation\0region → the last seq dropped from the window (each region's drops are a prefix) */
  readonly #dropped = new Map<string, bigint>();
  /** conversation\0region\0sender\0client_msg_id → the send's seq and time */
  readonly #sends = new Map<string, SendItem>();
  /** region → minute bucket → outbox entry key → entry: kept by time, dropped a bucket at once */
  readonly #outbox = new Map<string, Map<number, Map<string, OutboxItem>>>();
  /**
   * conversation → this region's outbox entries beyond its routing cursor, by seq: what the
   * sweeper looks for. Routing removes from it, so a scan costs what is unrouted, not history.
   */
  readonly #pending = new Map<string, OutboxItem[]>();
  /** conversation → regions whose messages this store holds */
  readonly #origins = new Map<string, Set<string>>();
  /** conversation → region → routing cursor */
  readonly #routed = new Map<string, Map<string, bigint>>();
  /** conversation → region\0origin → takeover cursor */
  readonly #takeovers = new Map<string, Map<string, bigint>>();
  /** conversation → user\0kind → region → vector */
  readonly #receipts = new Map<string, Map<string, Map<string, Vector>>>();
  /** conversation\0origin\0seq → user → region → when the push was sent (kept with the message) */
  readonly #pushes = new Map<string, Map<string, Map<string, number>>>();
  /** user → device → region → token (token "" = deleted) */
  readonly #tokens = new Map<string, Map<string, Map<string, StoredPushToken>>>();
  /** region → instance → canary */
  readonly #canaries = new Map<string, Map<string, { nonce: bigint; atMs: number }>>();
  readonly #historyMessages: number;
  readonly #historyRetentionMs: number;
  readonly #outboxRetentionMs: number;
  readonly #sendDedupMs: number;
  readonly #now: () => number;
  readonly #changes = new ChangeListeners();
  /** ages says which conversations got messages when (only with a history retention) */
  readonly #ages: AgeBuckets | undefined;
  /**
   * windowed: a bounded store keeps of this region's outbox only what is unrouted (#pending),
   * the only part anything reads here (the sweeper); unbounded, it keeps it all for its
   * retention, as the table does, so that replicas' items can be compared.
   */
  readonly #windowed: boolean;
  #outboxTrimDueMs = 0;
  #unroutedScanned = 0;

  constructor(region: string, opts: MemoryChatStoreOptions = {}) {
    this.region = region;
    this.#historyMessages = opts.historyMessages ?? Number.POSITIVE_INFINITY;
    this.#historyRetentionMs = opts.historyRetentionMs ?? Number.POSITIVE_INFINITY;
    this.#outboxRetentionMs = opts.outboxRetentionMs ?? 3_600_000;
    this.#sendDedupMs = opts.sendDedupMs ?? 7 * 86_400_000;
    this.#now = opts.now ?? Date.now;
    if (Number.isFinite(this.#historyRetentionMs)) {
      this.#ages = new AgeBuckets(this.#historyRetentionMs);
    }
    this.#windowed = Number.isFinite(this.#historyMessages) || this.#ages !== undefined;
  }

  async getConversation(id: string): Promise<StoredConversation | undefined> {
    const meta = first(this.#meta.get(id));
    if (!meta) return undefined;
    const memberIds: string[] = [];
    for (const [userId, byRegion] of this.#members.get(id) ?? []) {
      if (latestMembership(byRegion)?.member) memberIds.push(userId);
    }
    return { ...meta, memberIds: memberIds.sort() };
  }

  async listMemberships(userId: string, page: { after?: string; limit: number }) {
    const ids = [...(this.#memberships.get(userId) ?? [])]
      .filter(
        ([id, byRegion]) => latestMembership(byRegion)?.member && (!page.after || id > page.after),
      )
      .map(([id]) => id)
      .sort();
    const conversations: ConversationMeta[] = [];
    for (const id of ids.slice(0, page.limit)) {
      const meta = first(this.#memberships.get(userId)?.get(id))?.meta;
      if (meta) conversations.push({ ...meta });
    }
    return { conversations, more: ids.length > page.limit };
  }

  async createConversation(meta: ConversationMeta, memberIds: string[], hlc: bigint) {
    if (this.#meta.get(meta.id)?.has(this.region)) return;
    this.#setMeta(meta);
    this.#setMembership(meta, memberIds, true, hlc);
  }

  async head(conversationId: string): Promise<LogHead> {
    return { ...(this.#heads.get(conversationId)?.get(this.region) ?? { seq: 0n, hlc: 0n }) };
  }

  async heads(conversationIds: string[]): Promise<Map<string, Vector>> {
    const out = new Map<string, Vector>();
    for (const id of conversationIds) {
      const heads: Vector = new Map();
      for (const [region, head] of this.#heads.get(id) ?? []) heads.set(region, head.seq);
      out.set(id, heads);
    }
    return out;
  }

  async findSend(conversationId: string, senderId: string, clientMsgId: string) {
    return lowest(this.#copies(conversationId, senderId, clientMsgId));
  }

  async otherCopies(conversationId: string, messages: Message[]): Promise<Message[]> {
    return messages.flatMap((m) =>
      this.#copies(conversationId, m.senderId, m.clientMsgId, m.originRegion),
    );
  }

  /** copies returns a send's copies in every region visible here but `except`. */
  #copies(conversationId: string, senderId: string, clientMsgId: string, except?: string) {
    const out: Message[] = [];
    for (const region of this.#regionsOf(conversationId)) {
      if (region === except) continue;
      const send = this.#sends.get(sendKey(conversationId, region, senderId, clientMsgId));
      if (!send || this.#dedupExpired(send)) continue;
      const m = this.#bySeq.get(`${conversationId}\u0000${region}`)?.get(send.seq);
      if (m) out.push(copyMessage(m));
    }
    return out;
  }

  #dedupExpired(send: SendItem): boolean {
    return send.atMs + this.#sendDedupMs <= this.#now();
  }

  async append(cmd: AppendCommand): Promise<void> {
    const m = cmd.message;
    if (m.originRegion !== this.region) {
      throw new Error(`append of a ${m.originRegion} message in region ${this.region}`);
    }
    if (m.seq !== cmd.expectedSeq + 1n) throw new Error("message seq must be expectedSeq + 1");
    const head = this.#heads.get(m.conversationId)?.get(this.region) ?? { seq: 0n, hlc: 0n };
    if (head.seq !== cmd.expectedSeq) throw new SeqConflictError();
    const key = sendKey(m.conversationId, this.region, m.senderId, m.clientMsgId);
    const existing = this.#sends.get(key);
    if (existing && !this.#dedupExpired(existing)) {
      const stored = this.#bySeq.get(`${m.conversationId}\u0000${this.region}`)?.get(existing.seq);
      if (stored) throw new DuplicateSendError(copyMessage(stored));
    }
    // All checks passed: the writes below cannot fail, so the append is atomic.
    const pk = keys.conversation(m.conversationId);
    const newHead = { seq: m.seq, hlc: m.hlc };
    getOrCreate(this.#heads, m.conversationId, () => new Map()).set(this.region, newHead);
    this.#changes.emit(pk, keys.head(this.region), () => ({ ...newHead }));
    const send = { seq: m.seq, atMs: this.#now() };
    this.#sends.set(key, send);
    this.#changes.emit(pk, keys.send(this.region, m.senderId, m.clientMsgId), () => ({ ...send }));
    const item = { atMs: cmd.appendedAtMs, conversationId: m.conversationId, seq: m.seq };
    if (m.seq > (this.#routed.get(m.conversationId)?.get(this.region) ?? 0n)) {
      getOrCreate(this.#pending, m.conversationId, () => []).push(item);
    }
    this.#insertMessage(copyMessage(m));
    this.#changes.emit(pk, keys.message(this.region, m.seq), () => copyMessage(m));
    const entryKey = keys.outboxEntry(item.atMs, item.conversationId, item.seq);
    if (!this.#windowed) this.#outboxBucket(this.region, item.atMs).set(entryKey, item);
    this.#changes.emit(keys.outbox(this.region, 0, 0), entryKey, () => ({ ...item }));
    if (cmd.create && !this.#meta.get(cmd.create.id)?.has(this.region)) this.#setMeta(cmd.create);
    if (cmd.membership) {
      const { conversation, userIds, member } = cmd.membership;
      this.#setMembership(conversation, userIds, member, m.hlc);
    }
    this.#trimOutbox();
  }

  /** history reads the window: before its oldest message, the history ends (nothing older). */
  async history(conversationId: string, before: OrderKey | undefined, limit: number) {
    this.#trimLog(conversationId);
    const log = this.#logs.get(conversationId) ?? [];
    const end = before ? lowerBound(log, before) : log.length;
    const out: Message[] = [];
    for (let i = end - 1; i >= 0 && out.length < limit; i--) {
      out.push(copyMessage((log[i] as LogEntry).message));
    }
    return out;
  }

  async messagesAfter(
    conversationId: string,
    originRegion: string,
    afterSeq: bigint,
    limit: number,
  ) {
    const bySeq = this.#bySeq.get(`${conversationId}\u0000${originRegion}`);
    if (!bySeq) return [];
    return [...bySeq.keys()]
      .filter((seq) => seq > afterSeq)
      .sort((a, b) => (a < b ? -1 : 1))
      .slice(0, limit)
      .map((seq) => copyMessage(bySeq.get(seq) as Message));
  }

  async routedSeq(conversationId: string, region = this.region) {
    return this.#routed.get(conversationId)?.get(region) ?? 0n;
  }

  async advanceRoutedSeq(conversationId: string, seq: bigint) {
    const byRegion = getOrCreate(this.#routed, conversationId, () => new Map());
    if (seq <= (byRegion.get(this.region) ?? 0n)) return;
    byRegion.set(this.region, seq);
    this.#changes.emit(keys.conversation(conversationId), keys.routed(this.region), () => seq);
    this.#markRouted(conversationId, seq);
    // Routed messages beyond the window were kept only for routing: they can go now.
    this.#trimLog(conversationId);
  }

  /**
   * unrouted looks only at what routing has not passed (`#pending`), however much was routed.
   * Its work is counted for tests (`stats().unroutedScanned`).
   */
  async unrouted(fromMs: number, toMs: number, limit: number) {
    const out: Message[] = [];
    let scanned = 0;
    scan: for (const [conversationId, items] of this.#pending) {
      const bySeq = this.#bySeq.get(`${conversationId}\u0000${this.region}`);
      for (const item of items) {
        scanned++;
        if (item.atMs < fromMs || item.atMs > toMs) continue;
        const m = bySeq?.get(item.seq);
        if (m) out.push(copyMessage(m));
        if (out.length >= limit) break scan;
      }
    }
    this.#unroutedScanned = scanned;
    return out;
  }

  /** untakenOver reads only the outbox buckets of the time asked for. */
  async untakenOver(origin: string, fromMs: number, toMs: number, limit: number) {
    const out: Message[] = [];
    const buckets = this.#outbox.get(origin) ?? new Map<number, Map<string, OutboxItem>>();
    scan: for (const [bucket, items] of buckets) {
      if (!overlaps(bucket, fromMs, toMs)) continue;
      for (const item of items.values()) {
        if (item.atMs < fromMs || item.atMs > toMs) continue;
        const taken = this.#takeovers
          .get(item.conversationId)
          ?.get(`${this.region}\u0000${origin}`);
        if (item.seq <= (taken ?? 0n)) continue;
        const m = this.#bySeq.get(`${item.conversationId}\u0000${origin}`)?.get(item.seq);
        if (m) out.push(copyMessage(m));
        if (out.length >= limit) break scan;
      }
    }
    return out.sort(byConversationAndSeq);
  }

  async takeovers(conversationId: string, origin: string): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    for (const [key, seq] of this.#takeovers.get(conversationId) ?? []) {
      const [region, o] = key.split("\u0000") as [string, string];
      if (o === origin) out.set(region, seq);
    }
    return out;
  }

  async advanceTakeover(conversationId: string, origin: string, seq: bigint) {
    if (origin === this.region) throw new Error("a region does not take over its own messages");
    const byKey = getOrCreate(this.#takeovers, conversationId, () => new Map());
    const key = `${this.region}\u0000${origin}`;
    if (seq <= (byKey.get(key) ?? 0n)) return;
    byKey.set(key, seq);
    this.#changes.emit(
      keys.conversation(conversationId),
      keys.takeover(this.region, origin),
      () => seq,
    );
    // Another region's messages are kept until taken over (see #done): they can go now.
    this.#trimLog(conversationId);
  }

  async writeReceipt(conversationId: string, userId: string, kind: ReceiptKindName, upTo: Vector) {
    const byKey = getOrCreate(this.#receipts, conversationId, () => new Map());
    const byRegion = getOrCreate(byKey, `${userId}\u0000${kind}`, () => new Map());
    const before = mergeVectors(byRegion.values());
    const mine = byRegion.get(this.region) ?? new Map();
    const next = mergeMax(mine, upTo);
    byRegion.set(this.region, next);
    if ([...next].some(([r, seq]) => seq > (mine.get(r) ?? 0n))) {
      this.#changes.emit(
        keys.conversation(conversationId),
        keys.receipt(userId, kind, this.region),
        () => new Map(next),
      );
    }
    const merged = mergeVectors(byRegion.values());
    const advanced = [...merged].some(([region, seq]) => seq > (before.get(region) ?? 0n));
    return { merged, before, advanced };
  }

  async readReceipts(conversationId: string): Promise<StoredReceipt[]> {
    const out: StoredReceipt[] = [];
    for (const [key, byRegion] of this.#receipts.get(conversationId) ?? []) {
      const [userId, kind] = key.split("\u0000") as [string, ReceiptKindName];
      out.push({ userId, kind, upTo: mergeVectors(byRegion.values()) });
    }
    return out;
  }

  /**
   * claimPush keeps claims with their message. A claim for a message already out of the window
   * is made but not kept (nothing would ever drop it): a redelivery could push it twice.
   */
  async claimPush(userId: string, message: MessageRef): Promise<boolean> {
    const logKey = `${message.conversationId}\u0000${message.originRegion}`;
    if (message.seq <= (this.#dropped.get(logKey) ?? 0n)) return true;
    const byUser = getOrCreate(this.#pushes, messageKey(message), () => new Map());
    const byRegion = getOrCreate(byUser, userId, () => new Map());
    if (byRegion.size > 0) return false;
    const atMs = this.#now();
    byRegion.set(this.region, atMs);
    this.#changes.emit(
      keys.conversation(message.conversationId),
      keys.pushSent(userId, message.originRegion, message.seq, this.region),
      () => ({ atMs }),
    );
    return true;
  }

  async savePushToken(userId: string, token: StoredPushToken) {
    const byDevice = getOrCreate(this.#tokens, userId, () => new Map());
    getOrCreate(byDevice, token.deviceId, () => new Map()).set(this.region, { ...token });
    this.#changes.emit(keys.user(userId), keys.pushToken(token.deviceId, this.region), () => ({
      ...token,
    }));
  }

  async deletePushToken(userId: string, deviceId: string, atMs: number) {
    const byRegion = this.#tokens.get(userId)?.get(deviceId);
    if (!byRegion) return;
    const current = newestPushToken(byRegion.values());
    if (!current) return;
    await this.savePushToken(userId, { ...current, token: "", updatedAtMs: atMs });
  }

  async listPushTokens(userId: string): Promise<StoredPushToken[]> {
    const out: StoredPushToken[] = [];
    for (const byRegion of this.#tokens.get(userId)?.values() ?? []) {
      const t = newestPushToken(byRegion.values());
      if (t && t.token !== "") out.push({ ...t });
    }
    return out;
  }

  async probe(instanceId: string, nonce: bigint): Promise<boolean> {
    const canary = { nonce, atMs: this.#now() };
    getOrCreate(this.#canaries, this.region, () => new Map()).set(instanceId, canary);
    this.#changes.emit(keys.canary(this.region), instanceId, () => ({ ...canary }));
    return this.#canaries.get(this.region)?.get(instanceId)?.nonce === nonce;
  }

  onChange(listener: (change: ItemChange) => void): () => void {
    return this.#changes.add(listener);
  }

  applyReplicated(change: ItemChange): void {
    const region = foreignRegion(this.region, change);
    const { pk, sk } = change;
    const v = change.value;
    const kind = pk.slice(0, 2) === "c#" ? sk.split("#")[0] : pk.split("#")[0];
    const conversationId = pk.slice(2);
    const parts = sk.split("#");
    switch (kind) {
      case "meta":
        getOrCreate(this.#meta, conversationId, () => new Map()).set(region, v as ConversationMeta);
        return;
      case "mbr":
        getOrCreate(
          getOrCreate(this.#members, conversationId, () => new Map()),
          parts[1] as string,
          () => new Map(),
        ).set(region, v as MembershipItem);
        return;
      case "head":
        getOrCreate(this.#heads, conversationId, () => new Map()).set(region, v as LogHead);
        return;
      case "msg":
        this.#insertMessage(copyMessage(v as Message));
        return;
      case "send": {
        const [, , senderId, clientMsgId] = parts as [string, string, string, string];
        this.#sends.set(sendKey(conversationId, region, senderId, clientMsgId), v as SendItem);
        return;
      }
      case "routed":
        getOrCreate(this.#routed, conversationId, () => new Map()).set(region, v as bigint);
        return;
      case "tk":
        getOrCreate(this.#takeovers, conversationId, () => new Map()).set(
          `${region}\u0000${parts[2]}`,
          v as bigint,
        );
        return;
      case "rcpt":
        getOrCreate(
          getOrCreate(this.#receipts, conversationId, () => new Map()),
          `${parts[1]}\u0000${parts[2]}`,
          () => new Map(),
        ).set(region, new Map(v as Vector));
        return;
      case "psh": {
        const [, user, origin, seq] = parts as [string, string, string, string];
        const ref = { conversationId, originRegion: origin, seq: BigInt(seq) };
        const byUser = getOrCreate(this.#pushes, messageKey(ref), () => new Map());
        getOrCreate(byUser, user, () => new Map()).set(region, (v as { atMs: number }).atMs);
        return;
      }
      case "u": {
        const userId = pk.slice(2);
        if (parts[0] === "conv") {
          getOrCreate(
            getOrCreate(this.#memberships, userId, () => new Map()),
            parts[1] as string,
            () => new Map(),
          ).set(region, v as UserIndexItem);
        } else {
          getOrCreate(
            getOrCreate(this.#tokens, userId, () => new Map()),
            parts[1] as string,
            () => new Map(),
          ).set(region, v as StoredPushToken);
        }
        return;
      }
      case "o": {
        const item = v as OutboxItem;
        this.#outboxBucket(region, item.atMs).set(sk, item);
        this.#trimOutbox();
        return;
      }
      case "k":
        getOrCreate(this.#canaries, region, () => new Map()).set(
          sk,
          v as { nonce: bigint; atMs: number },
        );
        return;
      default:
        throw new Error(`MemoryChatStore cannot hold item ${pk} / ${sk}`);
    }
  }

  items(): ItemChange[] {
    const out: ItemChange[] = [];
    const put = (pk: string, sk: string, value: unknown) => out.push({ pk, sk, value });
    for (const [c, byRegion] of this.#meta)
      for (const [r, v] of byRegion) put(keys.conversation(c), keys.meta(r), v);
    for (const [c, byUser] of this.#members)
      for (const [u, byRegion] of byUser)
        for (const [r, v] of byRegion) put(keys.conversation(c), keys.member(u, r), v);
    for (const [u, byConv] of this.#memberships)
      for (const [c, byRegion] of byConv)
        for (const [r, v] of byRegion) put(keys.user(u), keys.membership(c, r), v);
    for (const [c, byRegion] of this.#heads)
      for (const [r, v] of byRegion) put(keys.conversation(c), keys.head(r), v);
    for (const [key, bySeq] of this.#bySeq) {
      const [c, r] = key.split("\u0000") as [string, string];
      for (const [seq, m] of bySeq) put(keys.conversation(c), keys.message(r, seq), m);
    }
    for (const [key, v] of this.#sends) {
      const [c, r, s, id] = key.split("\u0000") as [string, string, string, string];
      put(keys.conversation(c), keys.send(r, s, id), v);
    }
    for (const [r, buckets] of this.#outbox)
      for (const items of buckets.values())
        for (const [sk, i] of items) put(keys.outbox(r, 0, 0), sk, i);
    if (this.#windowed) {
      for (const items of this.#pending.values())
        for (const i of items)
          put(keys.outbox(this.region, 0, 0), keys.outboxEntry(i.atMs, i.conversationId, i.seq), i);
    }
    for (const [c, byRegion] of this.#routed)
      for (const [r, v] of byRegion) put(keys.conversation(c), keys.routed(r), v);
    for (const [c, byKey] of this.#takeovers)
      for (const [key, v] of byKey) {
        const [r, o] = key.split("\u0000") as [string, string];
        put(keys.conversation(c), keys.takeover(r, o), v);
      }
    for (const [c, byKey] of this.#receipts)
      for (const [key, byRegion] of byKey) {
        const [u, k] = key.split("\u0000") as [string, string];
        for (const [r, v] of byRegion) put(keys.conversation(c), keys.receipt(u, k, r), v);
      }
    for (const [key, byUser] of this.#pushes) {
      const [c, o, seq] = key.split("\u0000") as [string, string, string];
      for (const [u, byRegion] of byUser)
        for (const [r, atMs] of byRegion)
          put(keys.conversation(c), keys.pushSent(u, o, BigInt(seq), r), { atMs });
    }
    for (const [u, byDevice] of this.#tokens)
      for (const [d, byRegion] of byDevice)
        for (const [r, v] of byRegion) put(keys.user(u), keys.pushToken(d, r), v);
    for (const [r, byInstance] of this.#canaries)
      for (const [i, v] of byInstance) put(keys.canary(r), i, v);
    for (const item of out) writerRegionOf(item.pk, item.sk);
    return out;
  }

  /** regionsOf lists this region and the regions whose messages of a conversation it holds. */
  #regionsOf(conversationId: string): Iterable<string> {
    const origins = this.#origins.get(conversationId);
    return origins?.has(this.region) ? origins : [this.region, ...(origins ?? [])];
  }

  #setMeta(meta: ConversationMeta) {
    getOrCreate(this.#meta, meta.id, () => new Map()).set(this.region, { ...meta });
    this.#changes.emit(keys.conversation(meta.id), keys.meta(this.region), () => ({ ...meta }));
  }

  #setMembership(meta: ConversationMeta, userIds: string[], member: boolean, hlc: bigint) {
    const byUser = getOrCreate(this.#members, meta.id, () => new Map());
    for (const userId of userIds) {
      getOrCreate(byUser, userId, () => new Map()).set(this.region, { member, hlc });
      this.#changes.emit(keys.conversation(meta.id), keys.member(userId, this.region), () => ({
        member,
        hlc,
      }));
      const index = getOrCreate(this.#memberships, userId, () => new Map());
      const item = { member, hlc, meta: { ...meta } };
      getOrCreate(index, meta.id, () => new Map()).set(this.region, item);
      this.#changes.emit(keys.user(userId), keys.membership(meta.id, this.region), () => ({
        member,
        hlc,
        meta: { ...meta },
      }));
    }
  }

  /**
   * stats counts what the store holds, and what its last unrouted() looked at: for tests, which
   * check that these stay within the window however much went through.
   */
  stats(): { messages: number; unrouted: number; unroutedScanned: number } {
    let messages = 0;
    for (const bySeq of this.#bySeq.values()) messages += bySeq.size;
    let unrouted = 0;
    for (const items of this.#pending.values()) unrouted += items.length;
    return { messages, unrouted, unroutedScanned: this.#unroutedScanned };
  }

  #insertMessage(m: Message) {
    const logKey = `${m.conversationId}\u0000${m.originRegion}`;
    if (m.seq <= (this.#dropped.get(logKey) ?? 0n)) return; // a late copy of one dropped
    const bySeq = getOrCreate(this.#bySeq, logKey, () => new Map());
    if (bySeq.has(m.seq)) return; // a message never changes; a second copy adds nothing
    bySeq.set(m.seq, m);
    getOrCreate(this.#origins, m.conversationId, () => new Set()).add(m.originRegion);
    const log = getOrCreate(this.#logs, m.conversationId, () => []);
    const atMs = this.#now();
    const entry = { message: m, atMs };
    const key = orderKeyOf(m);
    // Messages almost always arrive in order: check the end before searching.
    const last = log.at(-1);
    if (!last || compareOrder(orderKeyOf(last.message), key) < 0) log.push(entry);
    else log.splice(lowerBound(log, key), 0, entry);
    this.#trimLog(m.conversationId);
    if (this.#ages) {
      this.#ages.add(m.conversationId, atMs);
      this.#ages.expire(atMs - this.#historyRetentionMs, (c) => this.#trimLog(c));
    }
  }

  /**
   * trimLog drops a conversation's oldest messages while they are beyond the window (more than
   * historyMessages, or stored longer ago than historyRetentionMs) and nothing needs them. It
   * stops at the first one still needed, so what is held is always the newest part of the log
   * in display order (and, per region, the newest seqs): history simply ends there.
   */
  #trimLog(conversationId: string) {
    const log = this.#logs.get(conversationId);
    if (!log) return;
    const cutoff = this.#now() - this.#historyRetentionMs;
    let drop = 0;
    for (const { message, atMs } of log) {
      const beyond = log.length - drop > this.#historyMessages || atMs <= cutoff;
      if (!beyond || !this.#done(message)) break;
      this.#forget(message);
      drop++;
    }
    if (drop === log.length) this.#logs.delete(conversationId);
    else if (drop > 0) log.splice(0, drop);
  }

  /**
   * done says whether nothing needs a message from the log any more: routing has passed it (a
   * message of this region), or this region has taken it over (another region's). Routing reads
   * skipped messages back from the log, and takeover reads a dead region's log back without
   * holes from its own cursor, so neither may find one missing.
   */
  #done(m: Message): boolean {
    const c = m.conversationId;
    if (m.originRegion === this.region) {
      return m.seq <= (this.#routed.get(c)?.get(this.region) ?? 0n);
    }
    return m.seq <= (this.#takeovers.get(c)?.get(`${this.region}\u0000${m.originRegion}`) ?? 0n);
  }

  /**
   * forget drops a message with what is kept only for it: its dedup item (a retry of it is a
   * new send from then on, collapsed by readers as any copy is) and its push claims.
   */
  #forget(m: Message) {
    const logKey = `${m.conversationId}\u0000${m.originRegion}`;
    const bySeq = this.#bySeq.get(logKey);
    bySeq?.delete(m.seq);
    if (bySeq?.size === 0) this.#bySeq.delete(logKey);
    if (m.seq > (this.#dropped.get(logKey) ?? 0n)) this.#dropped.set(logKey, m.seq);
    const key = sendKey(m.conversationId, m.originRegion, m.senderId, m.clientMsgId);
    if (this.#sends.get(key)?.seq === m.seq) this.#sends.delete(key);
    this.#pushes.delete(messageKey(m));
  }

  /** markRouted takes a conversation's entries up to `seq` out of what the sweeper looks at. */
  #markRouted(conversationId: string, seq: bigint) {
    const items = this.#pending.get(conversationId);
    if (!items) return;
    let routed = 0;
    while (routed < items.length && (items[routed] as OutboxItem).seq <= seq) routed++;
    if (routed === items.length) this.#pending.delete(conversationId);
    else if (routed > 0) items.splice(0, routed);
  }

  #outboxBucket(region: string, atMs: number): Map<string, OutboxItem> {
    const buckets = getOrCreate(this.#outbox, region, () => new Map());
    return getOrCreate(buckets, Math.floor(atMs / OUTBOX_BUCKET_MS), () => new Map());
  }

  /**
   * trimOutbox forgets outbox buckets past the retention, at most once a bucket's span. Every
   * bucket is looked at: replicated entries arrive in any order, so buckets open in any order.
   */
  #trimOutbox() {
    const now = this.#now();
    if (now < this.#outboxTrimDueMs) return;
    this.#outboxTrimDueMs = now + OUTBOX_BUCKET_MS;
    const oldest = Math.floor((now - this.#outboxRetentionMs) / OUTBOX_BUCKET_MS);
    for (const buckets of this.#outbox.values()) {
      for (const bucket of buckets.keys()) if (bucket < oldest) buckets.delete(bucket);
    }
  }
}

function sendKey(conversationId: string, region: string, senderId: string, clientMsgId: string) {
  return `${conversationId}\u0000${region}\u0000${senderId}\u0000${clientMsgId}`;
}

/** messageKey names a message (conversation, origin, seq) in the maps kept per message. */
function messageKey(m: MessageRef): string {
  return `${m.conversationId}\u0000${m.originRegion}\u0000${m.seq}`;
}

/** overlaps says whether an outbox bucket may hold entries between fromMs and toMs. */
function overlaps(bucket: number, fromMs: number, toMs: number): boolean {
  return (bucket + 1) * OUTBOX_BUCKET_MS > fromMs && bucket * OUTBOX_BUCKET_MS <= toMs;
}

/** lowest returns the copy lowest in display order, or undefined. */
function lowest(copies: Message[]): Message | undefined {
  let best: Message | undefined;
  for (const m of copies) {
    if (!best || compareOrder(orderKeyOf(m), orderKeyOf(best)) < 0) best = m;
  }
  return best;
}

function byConversationAndSeq(x: Message, y: Message): number {
  if (x.conversationId !== y.conversationId) return x.conversationId < y.conversationId ? -1 : 1;
  return x.seq === y.seq ? 0 : x.seq < y.seq ? -1 : 1;
}

/** lowerBound returns the index of the first message not before `key`. */
function lowerBound(log: LogEntry[], key: OrderKey): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareOrder(orderKeyOf((log[mid] as LogEntry).message), key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

function first<V>(map: Map<string, V> | undefined): V | undefined {
  if (!map) return undefined;
  for (const v of map.values()) return v;
  return undefined;
}
