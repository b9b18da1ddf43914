import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type {
  AdvanceTakeoverRequest,
  AppendInboxRequest,
  AppendMessageRequest,
  BatchAppendMessagesRequest,
  BatchReadConversationsRequest,
  BatchReadHeadsRequest,
  BatchReadReceiptsRequest,
  BatchReadSendersRequest,
  BatchWriteReceiptsRequest,
  BatchWriteRoutedSeqsRequest,
  ClaimPushRequest,
  DeletePushTokenRequest,
  InsertConversationRequest,
  ListMembershipsRequest,
  ListPushTokensRequest,
  ListUnroutedRequest,
  ListUntakenOverRequest,
  PersistenceService,
  ProbeRequest,
  ReadConversationRequest,
  ReadHistoryRequest,
  ReadInboxRequest,
  ReadMessagesRequest,
  ReadReceiptsRequest,
  ReadRoutedSeqRequest,
  ReadTakeoversRequest,
  SavePushTokenRequest,
  WriteReceiptRequest,
  WriteRoutedSeqRequest,
} from "../../gen/chat/v1/persistence_pb.ts";
import {
  type Conversation,
  ConversationKind,
  ConversationSchema,
  MembershipAction,
  type MembershipChange,
  MembershipChangeSchema,
  type Message,
  MessageSchema,
  type Receipt,
  ReceiptKind,
  ReceiptSchema,
} from "../../gen/chat/v1/types_pb.ts";
import { ChatError, Code, invalidArgument, notFound } from "../shared/errors.ts";
import { ClockDriftError, type HybridClock } from "../shared/hlc.ts";
import { KeyedLock } from "../shared/keyed-lock.ts";
import {
  type AppendCommand,
  type ChatStore,
  type ConversationMeta,
  compareOrder,
  DuplicateSendError,
  type OrderKey,
  orderKeyOf,
  type ReceiptKindName,
  SeqConflictError,
  type StoredConversation,
} from "../shared/ports/chat-store.ts";
import type { InboxStore } from "../shared/ports/inbox-store.ts";
import { vectorFromProto, vectorToProto } from "../shared/version-vector.ts";

/** PersistenceDeps are what the persistence handler needs. */
export interface PersistenceDeps {
  store: ChatStore;
  inbox: InboxStore;
  clock: HybridClock;
  now: () => number;
}

const APPEND_ATTEMPTS = 8;
/** SENDERS_REMEMBERED bounds the (conversation, sender) pairs known to be recorded already. */
const SENDERS_REMEMBERED = 50_000;
const DEFAULT_HISTORY_PAGE = 50;
const DEFAULT_LIST_PAGE = 100;

/**
 * PersistenceHandler implements PersistenceService over the chat and inbox stores. It owns
 * seq allocation and hlc stamping: it reads the log head, stamps the next message and lets
 * the store's compare-and-set reject it if another writer got there first.
 */
/** COVERED_LOOKUP is the most messages a receipt's advance is searched for their senders. */
const COVERED_LOOKUP = 100;

/** Range is the seqs of one region's messages a receipt's advance covers: (from, to]. */
interface Range {
  region: string;
  from: bigint;
  to: bigint;
}

/** Written is a receipt as written, and what its advance covers. */
interface Written {
  receipt: Receipt;
  advanced: boolean;
  covered: Range[];
  coversMany: boolean;
}

export class PersistenceHandler implements ServiceImpl<typeof PersistenceService> {
  readonly #d: PersistenceDeps;
  readonly #conversations = new KeyedLock();
  readonly #inboxes = new KeyedLock();
  /** senders are (conversation, sender) pairs whose `sent` record this task has written. */
  readonly #senders = new Set<string>();

  constructor(deps: PersistenceDeps) {
    this.#d = deps;
  }

  async insertConversation(req: InsertConversationRequest) {
    const { store } = this.#d;
    if (!req.memberIds.includes(req.createdBy)) {
      throw invalidArgument("member_ids: must include created_by");
    }
    const meta: ConversationMeta = {
      id: req.conversationId,
      kind: req.kind,
      title: req.title,
      createdBy: req.createdBy,
    };
    if (req.kind === ConversationKind.DIRECT) {
      if (req.memberIds.length !== 2) {
        throw invalidArgument("member_ids: a direct conversation has exactly two members");
      }
      await store.createConversation(meta, req.memberIds, this.#d.clock.now());
      const conversation = await this.#mustGet(req.conversationId);
      return { conversation: toConversation(conversation), duplicate: false };
    }
    const { message, duplicate } = await this.#append(
      {
        conversationId: req.conversationId,
        senderId: req.createdBy,
        senderDeviceId: req.senderDeviceId,
        clientMsgId: req.clientMsgId,
        seenHlc: req.seenHlc,
        content: {
          case: "membership",
          value: create(MembershipChangeSchema, {
            action: MembershipAction.CREATED,
            userIds: req.memberIds,
            title: req.title,
          }),
        },
      },
      meta,
    );
    const conversation = await this.#mustGet(req.conversationId);
    return { conversation: toConversation(conversation), message, duplicate };
  }

  async readConversation(req: ReadConversationRequest) {
    return { conversation: toConversation(await this.#mustGet(req.conversationId)) };
  }

  async listMemberships(req: ListMembershipsRequest) {
    const limit = req.limit || DEFAULT_LIST_PAGE;
    const after = req.pageToken ? decodeToken(req.pageToken) : undefined;
    const { conversations, more } = await this.#d.store.listMemberships(req.userId, {
      after,
      limit,
    });
    const last = conversations.at(-1);
    return {
      page: {
        conversations: conversations.map((c) => toConversation({ ...c, memberIds: [] })),
        nextPageToken: more && last ? encodeToken(last.id) : "",
      },
    };
  }

  async appendMessage(req: AppendMessageRequest) {
    if (req.content.case === undefined)
      throw invalidArgument("content: text or membership is required");
    return this.#append(req);
  }

  async batchReadConversations(req: BatchReadConversationsRequest) {
    const found = await Promise.all(
      req.conversationIds.map((id) => this.#d.store.getConversation(id)),
    );
    return {
      conversations: found.flatMap((c) => (c ? [toConversation(c)] : [])),
    };
  }

  async batchAppendMessages(req: BatchAppendMessagesRequest) {
    const outcomes: Array<{
      message?: Message;
      duplicate: boolean;
      errorCode?: number;
      errorMessage?: string;
      retryable?: boolean;
    }> = new Array(req.items.length);
    // Each conversation's items in request order; conversations concurrently. Domain
    // failures answer their item; anything else fails the call: a backend failure with its
    // retryable code (see toConnectError), so every item is retried; a bug as Internal.
    await Promise.all(
      [...groupBy(req.items, (item) => item.conversationId)].map(async ([, indexes]) => {
        for (const i of indexes) {
          const item = req.items[i] as AppendMessageRequest;
          try {
            if (item.content.case === undefined) {
              throw invalidArgument("content: text or membership is required");
            }
            outcomes[i] = await this.#append(item);
          } catch (err) {
            if (!(err instanceof ChatError)) throw err;
            outcomes[i] = {
              duplicate: false,
              errorCode: err.code,
              errorMessage: err.message,
              retryable: err.retryable,
            };
          }
        }
      }),
    );
    return { outcomes };
  }

  async readHistory(req: ReadHistoryRequest) {
    const q = req.query;
    if (!q) throw invalidArgument("query: required");
    const limit = q.limit || DEFAULT_HISTORY_PAGE;
    let before: OrderKey | undefined = q.before
      ? { hlc: q.before.hlc, region: q.before.originRegion, seq: q.before.seq }
      : undefined;
    // Newest first. A copy of a send is shown only where it is lowest in display order, on
    // whichever page that falls: pages stay disjoint and every client shows the same copy.
    const kept: Message[] = [];
    let hasMore = false;
    for (;;) {
      // One extra tells whether older messages exist.
      const page = await this.#d.store.history(q.conversationId, before, limit - kept.length + 1);
      const more = page.length > limit - kept.length;
      const candidates = page.slice(0, limit - kept.length);
      kept.push(...(await this.#lowestCopies(q.conversationId, candidates)));
      const last = candidates.at(-1);
      if (!more || !last || kept.length >= limit) {
        hasMore = more;
        break;
      }
      before = orderKeyOf(last);
    }
    return { history: { messages: kept.reverse(), hasMore } };
  }

  /** lowestCopies drops every message of which a copy sorts lower (found in any region). */
  async #lowestCopies(conversationId: string, page: Message[]): Promise<Message[]> {
    const copies = await this.#d.store.otherCopies(conversationId, page);
    const lowest = new Map<string, OrderKey>();
    for (const m of [...page, ...copies]) {
      const key = `${m.senderId}\u0000${m.clientMsgId}`;
      const seen = lowest.get(key);
      if (!seen || compareOrder(orderKeyOf(m), seen) < 0) lowest.set(key, orderKeyOf(m));
    }
    return page.filter(
      (m) =>
        compareOrder(
          orderKeyOf(m),
          lowest.get(`${m.senderId}\u0000${m.clientMsgId}`) as OrderKey,
        ) === 0,
    );
  }

  async readMessages(req: ReadMessagesRequest) {
    const messages = await this.#d.store.messagesAfter(
      req.conversationId,
      req.originRegion,
      req.afterSeq,
      req.limit || 100,
    );
    return { messages };
  }

  async appendInbox(req: AppendInboxRequest) {
    // Entries of one user are appended in request order, users in parallel.
    const entries = new Array(req.items.length);
    await Promise.all(
      [...groupBy(req.items, (item) => item.userId)].map(([userId, indexes]) =>
        this.#inboxes.run(userId, async () => {
          const appended = await this.#d.inbox.append(
            indexes.map((i) => ({ userId, message: req.items[i]?.message as Message })),
          );
          appended.forEach((entry, j) => {
            entries[indexes[j] as number] = entry;
          });
        }),
      ),
    );
    return { entries };
  }

  async readInbox(req: ReadInboxRequest) {
    const { entries, head, more, expired } = await this.#d.inbox.read(
      req.userId,
      vectorFromProto(req.after),
      req.limit || 500,
    );
    return { entries, head: vectorToProto(head), hasMore: more, expired: vectorToProto(expired) };
  }

  async writeReceipt(req: WriteReceiptRequest) {
    if (!req.receipt) throw invalidArgument("receipt: required");
    const [result] = await this.#writeReceipts([req.receipt]);
    return result ?? {};
  }

  async batchWriteReceipts(req: BatchWriteReceiptsRequest) {
    return { results: await this.#writeReceipts(req.receipts) };
  }

  async batchReadHeads(req: BatchReadHeadsRequest) {
    const heads = await this.#d.store.heads(req.conversationIds);
    return {
      heads: req.conversationIds.map((conversationId) => ({
        conversationId,
        heads: vectorToProto(heads.get(conversationId) ?? new Map()),
      })),
    };
  }

  async batchReadSenders(req: BatchReadSendersRequest) {
    const conversations = await Promise.all(
      req.conversationIds.map(async (conversationId) => {
        const receipts = await this.#d.store.readReceipts(conversationId);
        const userIds = receipts.filter((r) => r.kind === "sent").map((r) => r.userId);
        return { conversationId, userIds: userIds.sort() };
      }),
    );
    return { conversations };
  }

  async readReceipts(req: ReadReceiptsRequest) {
    return { receipts: await this.#receipts(req.conversationId) };
  }

  async batchReadReceipts(req: BatchReadReceiptsRequest) {
    const only =
      req.kind === ReceiptKind.DELIVERED
        ? "delivered"
        : req.kind === ReceiptKind.READ
          ? "read"
          : undefined;
    const all = await Promise.all(req.conversationIds.map((id) => this.#receipts(id, only)));
    return { receipts: all.flat() };
  }

  async #receipts(conversationId: string, only?: "delivered" | "read"): Promise<Receipt[]> {
    const receipts = await this.#d.store.readReceipts(conversationId);
    // `sent` records who has taken part; they are no receipt.
    return receipts
      .filter((r) => (only ? r.kind === only : r.kind !== "sent"))
      .map((r) =>
        create(ReceiptSchema, {
          conversationId,
          userId: r.userId,
          kind: r.kind === "read" ? ReceiptKind.READ : ReceiptKind.DELIVERED,
          upTo: vectorToProto(r.upTo),
        }),
      );
  }

  async readRoutedSeq(req: ReadRoutedSeqRequest) {
    return { seq: await this.#d.store.routedSeq(req.conversationId) };
  }

  async writeRoutedSeq(req: WriteRoutedSeqRequest) {
    await this.#d.store.advanceRoutedSeq(req.conversationId, req.seq);
    return {};
  }

  async batchWriteRoutedSeqs(req: BatchWriteRoutedSeqsRequest) {
    await Promise.all(
      req.cursors.map((c) => this.#d.store.advanceRoutedSeq(c.conversationId, c.seq)),
    );
    return {};
  }

  async listUnrouted(req: ListUnroutedRequest) {
    const now = this.#d.now();
    const messages = await this.#d.store.unrouted(
      now - (req.maxAgeMs || 3_600_000),
      now - req.minAgeMs,
      req.limit || 500,
    );
    return { messages };
  }

  async listUntakenOver(req: ListUntakenOverRequest) {
    if (req.originRegion === this.#d.store.region) {
      throw invalidArgument("origin_region: a region does not take over its own messages");
    }
    const messages = await this.#d.store.untakenOver(
      req.originRegion,
      Number(req.sinceMs),
      this.#d.now(),
      req.limit || 500,
    );
    return { messages };
  }

  async advanceTakeover(req: AdvanceTakeoverRequest) {
    if (req.originRegion === this.#d.store.region) {
      throw invalidArgument("origin_region: a region does not take over its own messages");
    }
    await this.#d.store.advanceTakeover(req.conversationId, req.originRegion, req.seq);
    return {};
  }

  async readTakeovers(req: ReadTakeoversRequest) {
    const [seqs, originRouted] = await Promise.all([
      this.#d.store.takeovers(req.conversationId, req.originRegion),
      this.#d.store.routedSeq(req.conversationId, req.originRegion),
    ]);
    return { seqs: Object.fromEntries(seqs), originRouted };
  }

  async claimPush(req: ClaimPushRequest) {
    const claimed = await this.#d.store.claimPush(req.userId, {
      conversationId: req.conversationId,
      originRegion: req.originRegion,
      seq: req.seq,
    });
    return { claimed };
  }

  async probe(req: ProbeRequest) {
    return { ok: await this.#d.store.probe(req.instanceId, req.nonce) };
  }

  async savePushToken(req: SavePushTokenRequest) {
    const t = req.token;
    if (!t) throw invalidArgument("token: required");
    await this.#d.store.savePushToken(req.userId, {
      deviceId: t.deviceId,
      platform: t.platform,
      token: t.token,
      updatedAtMs: this.#d.now(),
    });
    return {};
  }

  async deletePushToken(req: DeletePushTokenRequest) {
    await this.#d.store.deletePushToken(req.userId, req.deviceId, this.#d.now());
    return {};
  }

  async listPushTokens(req: ListPushTokensRequest) {
    const tokens = await this.#d.store.listPushTokens(req.userId);
    return {
      tokens: tokens.map((t) => ({
        deviceId: t.deviceId,
        platform: t.platform,
        token: t.token,
        registeredAtMs: BigInt(t.updatedAtMs),
      })),
    };
  }

  /**
   * writeReceipts writes receipts, those of one (conversation, user, kind) one after another
   * (each merges into the last) and the others concurrently, and names the senders each
   * advance covers.
   */
  async #writeReceipts(receipts: Receipt[]) {
    const written = new Array<Written>(receipts.length);
    await Promise.all(
      [...groupBy(receipts, (r) => `${r.conversationId}\u0000${r.userId}\u0000${r.kind}`)].map(
        async ([, indexes]) => {
          for (const i of indexes) written[i] = await this.#writeReceipt(receipts[i] as Receipt);
        },
      ),
    );
    const senders = await this.#coveredSenders(written);
    return written.map((w, i) => ({
      receipt: w.receipt,
      advanced: w.advanced,
      coveredSenderIds: senders[i] ?? [],
      coversMany: w.coversMany,
    }));
  }

  /**
   * writeReceipt writes one receipt and says which messages its advance newly covers: per
   * region, the seqs after the receipt before the write up to the receipt after it. Acks come
   * every few hundred milliseconds, so an advance is a few messages; one over more than
   * COVERED_LOOKUP is not looked up (`coversMany`).
   */
  async #writeReceipt(r: Receipt): Promise<Written> {
    const kind = receiptKindName(r.kind);
    const { merged, before, advanced } = await this.#d.store.writeReceipt(
      r.conversationId,
      r.userId,
      kind,
      vectorFromProto(r.upTo),
    );
    const receipt = create(ReceiptSchema, { ...r, upTo: vectorToProto(merged) });
    if (!advanced || kind === "sent") return { receipt, advanced, covered: [], coversMany: false };
    const covered = [...merged]
      .map(([region, seq]) => ({ region, from: before.get(region) ?? 0n, to: seq }))
      .filter(({ from, to }) => to > from);
    const count = covered.reduce((sum, { from, to }) => sum + (to - from), 0n);
    return count > BigInt(COVERED_LOOKUP)
      ? { receipt, advanced, covered: [], coversMany: true }
      : { receipt, advanced, covered, coversMany: false };
  }

  /**
   * coveredSenders names, per written receipt, who sent the messages stored here that it newly
   * covers. The members of a group acknowledge the same messages, so the receipts of a batch
   * mostly cover the same few: each conversation and region is read once, over the union of
   * what its receipts cover (unless that is wider than COVERED_LOOKUP, then per receipt).
   */
  async #coveredSenders(written: Written[]): Promise<string[][]> {
    const key = (conversationId: string, region: string) => `${conversationId}\u0000${region}`;
    const unions = new Map<string, { conversationId: string; region: string } & Range>();
    for (const w of written) {
      for (const r of w.covered) {
        const k = key(w.receipt.conversationId, r.region);
        const u = unions.get(k);
        if (!u) unions.set(k, { conversationId: w.receipt.conversationId, ...r });
        else {
          if (r.from < u.from) u.from = r.from;
          if (r.to > u.to) u.to = r.to;
        }
      }
    }
    const read = (conversationId: string, { region, from, to }: Range) =>
      this.#d.store.messagesAfter(conversationId, region, from, Number(to - from));
    const shared = new Map<string, Message[]>();
    await Promise.all(
      [...unions].map(async ([k, u]) => {
        if (u.to - u.from <= BigInt(COVERED_LOOKUP)) shared.set(k, await read(u.conversationId, u));
      }),
    );
    return Promise.all(
      written.map(async (w) => {
        const senders = new Set<string>();
        for (const r of w.covered) {
          const messages =
            shared.get(key(w.receipt.conversationId, r.region)) ??
            (await read(w.receipt.conversationId, r));
          for (const m of messages) if (m.seq > r.from && m.seq <= r.to) senders.add(m.senderId);
        }
        return [...senders].sort();
      }),
    );
  }

  /** membershipItems says which membership items a membership change writes. */
  async #membershipItems(
    conversationId: string,
    content: AppendMessageRequest["content"],
    created: ConversationMeta | undefined,
  ): Promise<AppendCommand["membership"]> {
    if (content.case !== "membership") return undefined;
    const change: MembershipChange = content.value;
    const conversation = created ?? (await this.#mustGet(conversationId));
    const meta = {
      id: conversation.id,
      kind: conversation.kind,
      title: conversation.title,
      createdBy: conversation.createdBy,
    };
    switch (change.action) {
      case MembershipAction.CREATED:
      case MembershipAction.ADDED:
        return { userIds: change.userIds, member: true, conversation: meta };
      case MembershipAction.REMOVED:
      case MembershipAction.LEFT:
        return { userIds: change.userIds, member: false, conversation: meta };
      default:
        throw invalidArgument("membership.action: unknown action");
    }
  }

  async #mustGet(id: string): Promise<StoredConversation> {
    const c = await this.#d.store.getConversation(id);
    if (!c) throw notFound(`conversation ${id} not found`);
    return c;
  }

  /**
   * append stores one message and records that its sender has taken part in the conversation
   * (presence is shared only between users who have both written in a conversation they share).
   * The record follows the message: if writing it fails, so does the call, and the retry that
   * finds the message stored writes it.
   */
  async #append(
    req: Pick<
      AppendMessageRequest,
      "conversationId" | "senderId" | "senderDeviceId" | "clientMsgId" | "seenHlc" | "content"
    >,
    create_?: ConversationMeta,
  ): Promise<{ message: Message; duplicate: boolean }> {
    const stored = await this.#appendMessage(req, create_);
    await this.#recordSender(stored.message);
    return stored;
  }

  /**
   * recordSender writes the sender's `sent` record of the conversation, once per task (and
   * again after SENDERS_REMEMBERED others): it is a fact that never changes, not a position to
   * keep up to date, so a send costs no extra write once its sender is known here.
   */
  async #recordSender(m: Message): Promise<void> {
    const key = `${m.conversationId}\u0000${m.senderId}`;
    if (this.#senders.has(key)) return;
    await this.#d.store.writeReceipt(
      m.conversationId,
      m.senderId,
      "sent",
      new Map([[m.originRegion, m.seq]]),
    );
    if (this.#senders.size >= SENDERS_REMEMBERED) this.#senders.clear();
    this.#senders.add(key);
  }

  /** appendMessage stamps and stores one message, retrying when another writer moved the head. */
  async #appendMessage(
    req: Pick<
      AppendMessageRequest,
      "conversationId" | "senderId" | "senderDeviceId" | "clientMsgId" | "seenHlc" | "content"
    >,
    create_?: ConversationMeta,
  ): Promise<{ message: Message; duplicate: boolean }> {
    const { store, clock } = this.#d;
    const earlier = await store.findSend(req.conversationId, req.senderId, req.clientMsgId);
    if (earlier) return { message: earlier, duplicate: true };
    return this.#conversations.run(req.conversationId, async () => {
      for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
        const head = await store.head(req.conversationId);
        let hlc: bigint;
        try {
          // biome-ignore lint/complexity/useMathMinMax: Math.max does not take bigints
          hlc = clock.after(head.hlc > req.seenHlc ? head.hlc : req.seenHlc);
        } catch (err) {
          if (err instanceof ClockDriftError) throw invalidArgument(`seen_hlc: ${err.message}`);
          throw err;
        }
        const message = create(MessageSchema, {
          conversationId: req.conversationId,
          originRegion: store.region,
          seq: head.seq + 1n,
          hlc,
          senderId: req.senderId,
          senderDeviceId: req.senderDeviceId,
          clientMsgId: req.clientMsgId,
          content: req.content,
        });
        const cmd: AppendCommand = {
          message,
          expectedSeq: head.seq,
          appendedAtMs: this.#d.now(),
          membership: await this.#membershipItems(req.conversationId, req.content, create_),
          create: create_,
        };
        try {
          await store.append(cmd);
          return { message, duplicate: false };
        } catch (err) {
          if (err instanceof DuplicateSendError) return { message: err.existing, duplicate: true };
          if (err instanceof SeqConflictError) continue;
          throw err;
        }
      }
      throw new ChatError(Code.Aborted, `conversation ${req.conversationId} is busy; retry`, {
        retryable: true,
      });
    });
  }
}

/** groupBy maps each key to the indexes of its items, in order. */
function groupBy<T>(items: T[], key: (item: T) => string): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  items.forEach((item, i) => {
    const k = key(item);
    const list = groups.get(k);
    if (list) list.push(i);
    else groups.set(k, [i]);
  });
  return groups;
}

function receiptKindName(kind: ReceiptKind): ReceiptKindName {
  if (kind === ReceiptKind.DELIVERED) return "delivered";
  if (kind === ReceiptKind.READ) return "read";
  throw invalidArgument("receipt.kind: must be DELIVERED or READ");
}

function toConversation(c: StoredConversation): Conversation {
  return create(ConversationSchema, {
    id: c.id,
    kind: c.kind,
    title: c.title,
    createdBy: c.createdBy,
    memberIds: c.memberIds,
  });
}

function encodeToken(lastId: string): string {
  return Buffer.from(lastId, "utf8").toString("base64url");
}

function decodeToken(token: string): string {
  const id = Buffer.from(token, "base64url").toString("utf8");
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(id))
    throw invalidArgument("page_token: not a token this service issued");
  return id;
}
