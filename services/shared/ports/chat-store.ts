import type { ConversationKind, Message, PushPlatform } from "../../../gen/chat/v1/types_pb.ts";
import type { Vector } from "../version-vector.ts";

/**
 * ChatStore is the chat database: conversations, membership, the message log, receipts,
 * routing cursors and push tokens. Only the persistence service uses it.
 *
 * The single-writer rule (DESIGN.md §3): every item an implementation writes belongs to the
 * store's own `region`, and state that several regions update (membership, receipts, push
 * tokens) is kept as one item per writer region and merged on read. Reads see items of every
 * region that replication has delivered so far, in any order.
 *
 * Implementations: MemoryChatStore (one process, the embedded default), DynamoChatStore.
 */
export interface ChatStore {
  /** region is the writer region: the only region whose items this store writes. */
  readonly region: string;

  /**
   * getConversation returns a conversation's metadata and current members, or undefined.
   * Members are merged across regions: per user, the membership item with the greatest
   * (hlc, region) decides.
   */
  getConversation(id: string): Promise<StoredConversation | undefined>;

  /**
   * listMemberships pages through the conversations a user currently belongs to, ordered by
   * conversation id. `after` is the last id of the previous page.
   */
  listMemberships(
    userId: string,
    page: { after?: string; limit: number },
  ): Promise<{ conversations: ConversationMeta[]; more: boolean }>;

  /**
   * createConversation writes a conversation's metadata and initial membership, unless this
   * region already has them (then it changes nothing). Used for direct conversations, which
   * have no log entry for their creation.
   */
  createConversation(meta: ConversationMeta, memberIds: string[], hlc: bigint): Promise<void>;

  /** head returns this region's latest seq and hlc of a conversation ({0n, 0n} when none). */
  head(conversationId: string): Promise<LogHead>;

  /**
   * heads returns, per conversation, every region's latest seq (its log head) as far as
   * replication has brought the head items here: this region's exactly, another region's
   * possibly behind (or, as items replicate in any order, behind the messages already here).
   * Regions without messages are left out; every conversation asked for is in the map.
   */
  heads(conversationIds: string[]): Promise<Map<string, Vector>>;

  /**
   * findSend returns the message stored for a sender's client_msg_id by this region or by any
   * region whose items replication has delivered here (the lowest in display order when a retry
   * made copies in several regions), if its dedup item has not expired.
   */
  findSend(
    conversationId: string,
    senderId: string,
    clientMsgId: string,
  ): Promise<Message | undefined>;

  /**
   * otherCopies returns the stored copies of these messages' sends made in other regions (a
   * send retried in another region before replication brought the first copy makes a second
   * one), as far as replication has brought them here. Copies are found through the dedup
   * items, so they are found while those live.
   */
  otherCopies(conversationId: string, messages: Message[]): Promise<Message[]>;

  /**
   * append stores a message atomically with everything that must change with it: the log head
   * (only if it is still `expectedSeq`, else SeqConflictError and nothing is written), the
   * dedup key (if taken, DuplicateSendError carrying the stored message and nothing is
   * written), the routing outbox entry, membership items and, when `create` is set, the
   * conversation's metadata. `message.seq` must be `expectedSeq + 1n`.
   */
  append(cmd: AppendCommand): Promise<void>;

  /**
   * history returns messages of every region strictly before `before` in display order
   * (hlc, origin_region, seq), newest first, at most `limit`. It never loads the whole log.
   */
  history(conversationId: string, before: OrderKey | undefined, limit: number): Promise<Message[]>;

  /** messagesAfter returns one origin region's messages with seq > afterSeq, by seq. */
  messagesAfter(
    conversationId: string,
    originRegion: string,
    afterSeq: bigint,
    limit: number,
  ): Promise<Message[]>;

  /**
   * routedSeq returns how far routing has processed a region's messages of a conversation:
   * this region's, or another's as far as replication has brought its cursor.
   */
  routedSeq(conversationId: string, region?: string): Promise<bigint>;

  /** advanceRoutedSeq raises the routing cursor to `seq`; it never moves back. */
  advanceRoutedSeq(conversationId: string, seq: bigint): Promise<void>;

  /**
   * unrouted returns this region's messages appended between `fromMs` and `toMs` (wall time of
   * the append) whose seq is beyond the routing cursor: sends whose publisher died.
   */
  unrouted(fromMs: number, toMs: number, limit: number): Promise<Message[]>;

  /**
   * untakenOver returns the messages `origin` (another region) appended between `fromMs` and
   * `toMs` that replication has brought here and this region has not taken over, ordered by
   * conversation and seq: what a dead region may have left unrouted (see messaging's README).
   */
  untakenOver(origin: string, fromMs: number, toMs: number, limit: number): Promise<Message[]>;

  /** takeovers returns, per region, how far it took over `origin`'s messages of a conversation. */
  takeovers(conversationId: string, origin: string): Promise<Map<string, bigint>>;

  /** advanceTakeover raises this region's takeover cursor of `origin`'s messages; never back. */
  advanceTakeover(conversationId: string, origin: string, seq: bigint): Promise<void>;

  /**
   * writeReceipt raises this region's receipt item of (conversation, user, kind) entry-wise to
   * `upTo` and returns the receipt merged across regions before and after the write, and
   * whether anything advanced. Kind `sent` records that the user sent a message in the
   * conversation (see ReceiptKindName).
   */
  writeReceipt(
    conversationId: string,
    userId: string,
    kind: ReceiptKindName,
    upTo: Vector,
  ): Promise<{ merged: Vector; before: Vector; advanced: boolean }>;

  /** readReceipts returns every receipt of a conversation (of every kind), merged across regions. */
  readReceipts(conversationId: string): Promise<StoredReceipt[]>;

  /**
   * savePushToken records a device's push token (replacing the device's previous one). Merged
   * across regions by `updatedAtMs`, newest wins; a deletion is a newer record without token.
   */
  savePushToken(userId: string, token: StoredPushToken): Promise<void>;

  /** deletePushToken forgets a device's push token. */
  deletePushToken(userId: string, deviceId: string, atMs: number): Promise<void>;

  /**
   * listPushTokens returns the user's live push tokens, merged across regions, each with the
   * time it was registered (`updatedAtMs`).
   */
  listPushTokens(userId: string): Promise<StoredPushToken[]>;

  /**
   * claimPush records that this region pushes a notification for a message to a user, unless
   * a record of any region is already here; it returns whether the claim was made. A record is
   * written once, before the push, so redeliveries never push twice. Two regions can both claim
   * only within the replication lag, and only while each believes the other dead.
   */
  claimPush(userId: string, message: MessageRef): Promise<boolean>;

  /**
   * probe writes this region's canary item for an instance and reads it back (strongly): the
   * store part of the delivery canary. True when the read saw the write.
   */
  probe(instanceId: string, nonce: bigint): Promise<boolean>;
}

/** MessageRef names one message by its identity. */
export interface MessageRef {
  conversationId: string;
  originRegion: string;
  seq: bigint;
}

/** ConversationMeta is what never changes about a conversation. */
export interface ConversationMeta {
  id: string;
  kind: ConversationKind;
  title: string;
  createdBy: string;
}

/** StoredConversation is a conversation with its current members, sorted. */
export interface StoredConversation extends ConversationMeta {
  memberIds: string[];
}

/** LogHead is the end of one region's log of a conversation. */
export interface LogHead {
  seq: bigint;
  hlc: bigint;
}

/** OrderKey is a position in display order. */
export interface OrderKey {
  hlc: bigint;
  region: string;
  seq: bigint;
}

/** AppendCommand is everything append writes. */
export interface AppendCommand {
  message: Message;
  expectedSeq: bigint;
  /**
   * membership sets these users' membership (true = member) as of the message's hlc; the
   * conversation's metadata goes into each user's index of conversations.
   */
  membership?: { userIds: string[]; member: boolean; conversation: ConversationMeta };
  /** create writes the conversation's metadata with the message. */
  create?: ConversationMeta;
  /** appendedAtMs is the wall time recorded in the routing outbox. */
  appendedAtMs: number;
}

/**
 * ReceiptKindName names the positions a member has per conversation: the two receipts other
 * members see (delivered, read) and `sent`, a position of a message the user sent there (not
 * necessarily the last), which only says that they have taken part in the conversation.
 * Persistence never shows `sent` as a receipt; it decides who may see whose presence.
 */
export type ReceiptKindName = "delivered" | "read" | "sent";

/** StoredReceipt is one member's receipt of a conversation. */
export interface StoredReceipt {
  userId: string;
  kind: ReceiptKindName;
  upTo: Vector;
}

/** StoredPushToken is where to push for one device. */
export interface StoredPushToken {
  deviceId: string;
  platform: PushPlatform;
  token: string;
  updatedAtMs: number;
}

/** SeqConflictError: another writer moved the log head since it was read. Retry. */
export class SeqConflictError extends Error {
  override name = "SeqConflictError";
}

/** DuplicateSendError: the client_msg_id was already used; `existing` is the stored message. */
export class DuplicateSendError extends Error {
  override name = "DuplicateSendError";
  readonly existing: Message;
  constructor(existing: Message) {
    super(`client_msg_id ${existing.clientMsgId} already stored as seq ${existing.seq}`);
    this.existing = existing;
  }
}

/** compareOrder orders display positions: by hlc, then origin region, then seq. */
export function compareOrder(a: OrderKey, b: OrderKey): number {
  if (a.hlc !== b.hlc) return a.hlc < b.hlc ? -1 : 1;
  if (a.region !== b.region) return a.region < b.region ? -1 : 1;
  return a.seq === b.seq ? 0 : a.seq < b.seq ? -1 : 1;
}

/** orderKeyOf returns a message's display position. */
export function orderKeyOf(m: Message): OrderKey {
  return { hlc: m.hlc, region: m.originRegion, seq: m.seq };
}

/** MembershipItem is one region's record of whether a user is a member, as of an hlc. */
export interface MembershipItem {
  member: boolean;
  hlc: bigint;
}

/**
 * latestMembership merges one user's membership items (region → item): the item with the
 * greatest (hlc, region) decides, so every region computes the same membership.
 */
export function latestMembership(
  byRegion: Map<string, MembershipItem>,
): MembershipItem | undefined {
  let best: MembershipItem | undefined;
  let bestRegion = "";
  for (const [region, item] of byRegion) {
    if (!best || item.hlc > best.hlc || (item.hlc === best.hlc && region > bestRegion)) {
      best = item;
      bestRegion = region;
    }
  }
  return best;
}

/** newestPushToken merges one device's push-token records: the newest wins. */
export function newestPushToken(records: Iterable<StoredPushToken>): StoredPushToken | undefined {
  let best: StoredPushToken | undefined;
  for (const t of records) if (!best || t.updatedAtMs > best.updatedAtMs) best = t;
  return best;
}
