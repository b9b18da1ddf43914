import { clone } from "@bufbuild/protobuf";
import { type Message, MessageSchema } from "../../../../gen/chat/v1/types_pb.ts";
import {
  type AppendCommand,
  type ChatStore,
  type ConversationMeta,
  compareOrder,
  DuplicateSendError,
  type LogHead,
  latestMembership,
  type MembershipItem,
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

interface OutboxItem {
  atMs: number;
  conversationId: string;
  seq: bigint;
}

/**
 * MemoryChatStore keeps the chat database in this process's memory: the embedded default for
 * `npm start` and tests. It keeps every region's items apart exactly as the DynamoDB table
 * does, so the same merge-on-read code runs; it holds only one process's data and loses it on
 * exit. Stored messages are copied in and out, so callers cannot alter what is stored.
 */
export class MemoryChatStore implements ChatStore {
  readonly region: string;
  readonly #meta = new Map<string, Map<string, ConversationMeta>>();
  /** conversation → user → region → membership */
  readonly #members = new Map<string, Map<string, Map<string, MembershipItem>>>();
  /** user → conversation → region → membership (the user's index) */
  readonly #memberships = new Map<string, Map<string, Map<string, MembershipItem>>>();
  readonly #heads = new Map<string, LogHead>();
  /** conversation → messages of all regions in display order */
  readonly #logs = new Map<string, Message[]>();
  /** conversation\0region → seq → message */
  readonly #bySeq = new Map<string, Map<bigint, Message>>();
  readonly #sends = new Map<string, Message>();
  readonly #outbox: OutboxItem[] = [];
  readonly #routed = new Map<string, bigint>();
  /** conversation → user\0kind → region → vector */
  readonly #receipts = new Map<string, Map<string, Map<string, Vector>>>();
  /** user → device → region → token (token "" = deleted) */
  readonly #tokens = new Map<string, Map<string, Map<string, StoredPushToken>>>();
  readonly #outboxRetentionMs: number;
  readonly #sendDedupMs: number;
  readonly #now: () => number;
  /** send key → when it was stored */
  readonly #sentAt = new Map<string, number>();

  constructor(
    region: string,
    opts: { outboxRetentionMs?: number; sendDedupMs?: number; now?: () => number } = {},
  ) {
    this.region = region;
    this.#outboxRetentionMs = opts.outboxRetentionMs ?? 3_600_000;
    this.#sendDedupMs = opts.sendDedupMs ?? 7 * 86_400_000;
    this.#now = opts.now ?? Date.now;
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
      const meta = first(this.#meta.get(id));
      if (meta) conversations.push({ ...meta });
    }
    return { conversations, more: ids.length > page.limit };
  }

  async createConversation(meta: ConversationMeta, memberIds: string[], hlc: bigint) {
    const byRegion = getOrCreate(this.#meta, meta.id, () => new Map());
    if (byRegion.has(this.region)) return;
    byRegion.set(this.region, { ...meta });
    this.#setMembership(meta.id, memberIds, true, hlc);
  }

  async head(conversationId: string): Promise<LogHead> {
    return { ...(this.#heads.get(conversationId) ?? { seq: 0n, hlc: 0n }) };
  }

  async findSend(conversationId: string, senderId: string, clientMsgId: string) {
    const key = sendKey(conversationId, this.region, senderId, clientMsgId);
    const m = this.#sends.get(key);
    return m && !this.#dedupExpired(key) ? clone(MessageSchema, m) : undefined;
  }

  #dedupExpired(key: string): boolean {
    return (this.#sentAt.get(key) ?? 0) + this.#sendDedupMs <= this.#now();
  }

  async append(cmd: AppendCommand): Promise<void> {
    const m = cmd.message;
    if (m.originRegion !== this.region) {
      throw new Error(`append of a ${m.originRegion} message in region ${this.region}`);
    }
    if (m.seq !== cmd.expectedSeq + 1n) throw new Error("message seq must be expectedSeq + 1");
    const head = this.#heads.get(m.conversationId) ?? { seq: 0n, hlc: 0n };
    if (head.seq !== cmd.expectedSeq) throw new SeqConflictError();
    const key = sendKey(m.conversationId, this.region, m.senderId, m.clientMsgId);
    const existing = this.#sends.get(key);
    if (existing && !this.#dedupExpired(key))
      throw new DuplicateSendError(clone(MessageSchema, existing));
    // All checks passed: the writes below cannot fail, so the append is atomic.
    const stored = clone(MessageSchema, m);
    this.#heads.set(m.conversationId, { seq: m.seq, hlc: m.hlc });
    this.#sends.set(key, stored);
    this.#sentAt.set(key, this.#now());
    this.#insertMessage(stored);
    this.#outbox.push({ atMs: cmd.appendedAtMs, conversationId: m.conversationId, seq: m.seq });
    if (cmd.create && !this.#meta.get(cmd.create.id)?.has(this.region)) {
      getOrCreate(this.#meta, cmd.create.id, () => new Map()).set(this.region, { ...cmd.create });
    }
    if (cmd.membership) {
      this.#setMembership(m.conversationId, cmd.membership.userIds, cmd.membership.member, m.hlc);
    }
    this.#trimOutbox(cmd.appendedAtMs);
  }

  async history(conversationId: string, before: OrderKey | undefined, limit: number) {
    const log = this.#logs.get(conversationId) ?? [];
    const end = before ? lowerBound(log, before) : log.length;
    const out: Message[] = [];
    for (let i = end - 1; i >= 0 && out.length < limit; i--) {
      out.push(clone(MessageSchema, log[i] as Message));
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
      .map((seq) => clone(MessageSchema, bySeq.get(seq) as Message));
  }

  async routedSeq(conversationId: string) {
    return this.#routed.get(conversationId) ?? 0n;
  }

  async advanceRoutedSeq(conversationId: string, seq: bigint) {
    if (seq > (this.#routed.get(conversationId) ?? 0n)) this.#routed.set(conversationId, seq);
  }

  async unrouted(fromMs: number, toMs: number, limit: number) {
    const out: Message[] = [];
    for (const item of this.#outbox) {
      if (item.atMs < fromMs || item.atMs > toMs) continue;
      if (item.seq <= (this.#routed.get(item.conversationId) ?? 0n)) continue;
      const m = this.#bySeq.get(`${item.conversationId}\u0000${this.region}`)?.get(item.seq);
      if (m) out.push(clone(MessageSchema, m));
      if (out.length >= limit) break;
    }
    return out;
  }

  async writeReceipt(conversationId: string, userId: string, kind: ReceiptKindName, upTo: Vector) {
    const byKey = getOrCreate(this.#receipts, conversationId, () => new Map());
    const byRegion = getOrCreate(byKey, `${userId}\u0000${kind}`, () => new Map());
    const before = mergeVectors(byRegion.values());
    byRegion.set(this.region, mergeMax(byRegion.get(this.region) ?? new Map(), upTo));
    const merged = mergeVectors(byRegion.values());
    const advanced = [...merged].some(([region, seq]) => seq > (before.get(region) ?? 0n));
    return { merged, advanced };
  }

  async readReceipts(conversationId: string): Promise<StoredReceipt[]> {
    const out: StoredReceipt[] = [];
    for (const [key, byRegion] of this.#receipts.get(conversationId) ?? []) {
      const [userId, kind] = key.split("\u0000") as [string, ReceiptKindName];
      out.push({ userId, kind, upTo: mergeVectors(byRegion.values()) });
    }
    return out;
  }

  async savePushToken(userId: string, token: StoredPushToken) {
    const byDevice = getOrCreate(this.#tokens, userId, () => new Map());
    getOrCreate(byDevice, token.deviceId, () => new Map()).set(this.region, { ...token });
  }

  async deletePushToken(userId: string, deviceId: string, atMs: number) {
    const byRegion = this.#tokens.get(userId)?.get(deviceId);
    if (!byRegion) return;
    const current = newestPushToken(byRegion.values());
    if (!current) return;
    byRegion.set(this.region, { ...current, token: "", updatedAtMs: atMs });
  }

  async listPushTokens(userId: string): Promise<StoredPushToken[]> {
    const out: StoredPushToken[] = [];
    for (const byRegion of this.#tokens.get(userId)?.values() ?? []) {
      const t = newestPushToken(byRegion.values());
      if (t && t.token !== "") out.push({ ...t });
    }
    return out;
  }

  #setMembership(conversationId: string, userIds: string[], member: boolean, hlc: bigint) {
    const byUser = getOrCreate(this.#members, conversationId, () => new Map());
    for (const userId of userIds) {
      getOrCreate(byUser, userId, () => new Map()).set(this.region, { member, hlc });
      const index = getOrCreate(this.#memberships, userId, () => new Map());
      getOrCreate(index, conversationId, () => new Map()).set(this.region, { member, hlc });
    }
  }

  #insertMessage(m: Message) {
    const log = getOrCreate(this.#logs, m.conversationId, () => []);
    const key = orderKeyOf(m);
    // Messages almost always arrive in order: check the end before searching.
    const last = log.at(-1);
    if (!last || compareOrder(orderKeyOf(last), key) < 0) log.push(m);
    else log.splice(lowerBound(log, key), 0, m);
    getOrCreate(this.#bySeq, `${m.conversationId}\u0000${m.originRegion}`, () => new Map()).set(
      m.seq,
      m,
    );
  }

  #trimOutbox(nowMs: number) {
    let drop = 0;
    while (
      drop < this.#outbox.length &&
      (this.#outbox[drop] as OutboxItem).atMs < nowMs - this.#outboxRetentionMs
    ) {
      drop++;
    }
    if (drop > 0) this.#outbox.splice(0, drop);
  }
}

function sendKey(conversationId: string, region: string, senderId: string, clientMsgId: string) {
  return `${conversationId}\u0000${region}\u0000${senderId}\u0000${clientMsgId}`;
}

/** lowerBound returns the index of the first message not before `key`. */
function lowerBound(log: Message[], key: OrderKey): number {
  let lo = 0;
  let hi = log.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareOrder(orderKeyOf(log[mid] as Message), key) < 0) lo = mid + 1;
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
