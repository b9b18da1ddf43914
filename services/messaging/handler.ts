import { create } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  type ErrorCode,
  type Error as ErrorFrame,
  ErrorSchema,
  type MarkRead,
} from "../../gen/chat/v1/client_pb.ts";
import type {
  AddMembersRequest,
  BatchMarkDeliveredRequest,
  BatchSendMessagesRequest,
  CreateConversationRequest,
  GetConversationRequest,
  GetHistoryRequest,
  GetPresenceRequest,
  GetReceiptsRequest,
  ListConversationsRequest,
  MarkDeliveredRequest,
  MarkReadRequest,
  MessagingService,
  RemoveMembersRequest,
  SendMessageRequest,
  SetTypingRequest,
} from "../../gen/chat/v1/messaging_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import {
  type Conversation,
  ConversationKind,
  type InboxEntry,
  MembershipAction,
  type Message,
  type MessageDraft,
  type Presence,
  PresenceSchema,
  type Receipt,
  ReceiptKind,
  ReceiptSchema,
  type VersionVector,
} from "../../gen/chat/v1/types_pb.ts";
import { Batcher, inChunks } from "../shared/batcher.ts";
import {
  ChatError,
  failedPrecondition,
  invalidArgument,
  isRetryableCode,
  notFound,
  permissionDenied,
  toConnectError,
} from "../shared/errors.ts";
import { directConversationId, groupConversationId } from "../shared/ids.ts";
import { type Caller, callerOf } from "../shared/interceptors.ts";
import type { Bus } from "../shared/ports/bus.ts";
import type { SessionRegistry } from "../shared/ports/session-registry.ts";
import { publishEvents, TOPICS } from "../shared/topics.ts";
import { dominates, type Vector, vectorFromProto } from "../shared/version-vector.ts";
import { RateLimiter } from "./rate-limit.ts";

/** PROOF_READS is how many message reads check receipt positions at once (provenByMessages). */
const PROOF_READS = 8;

/** DEFAULT_CONVERSATION_CHANGES_PER_MINUTE is CONVERSATION_CHANGES_PER_MINUTE's default. */
export const DEFAULT_CONVERSATION_CHANGES_PER_MINUTE = 30;

/** MessagingHooks let tests stop a send at the dual-write point, as a crash would. */
export interface MessagingHooks {
  /** afterAppend runs once a send is durable and before its event is published. */
  afterAppend?: (message: Message) => Promise<void>;
  /**
   * afterInboxAppend runs when routing has appended entries to inboxes and before it hands
   * them to connected devices (a test slows routing down with it).
   */
  afterInboxAppend?: (entries: InboxEntry[]) => Promise<void>;
}

/** MessagingDeps are what the messaging handler needs. */
export interface MessagingDeps {
  region: string;
  /** peers are the other regions, whose users' presence this region's registry mirrors. */
  peers?: readonly string[];
  persistence: Client<typeof PersistenceService>;
  bus: Pick<Bus, "publish">;
  registry: Pick<SessionRegistry, "lookup" | "remotePresence">;
  maxGroupSize: number;
  /**
   * replicationWaitMs is how long a request that the conversation as stored here does not
   * authorize waits for table replication before it is refused (0: not at all). With several
   * regions a member can learn of a conversation, or of being added, from the mirrored bus
   * before the table brings the conversation to this region.
   */
  replicationWaitMs?: number;
  /**
   * conversationChangesPerMinute is how many conversations a user may create, plus membership
   * changes they may make (leaving excepted), per minute on this task, a minute's worth at
   * once (0: no limit; default DEFAULT_CONVERSATION_CHANGES_PER_MINUTE).
   */
  conversationChangesPerMinute?: number;
  hooks?: MessagingHooks;
}

/** ReceiptPosition is one conversation's position in an ack or mark_read. */
interface ReceiptPosition {
  conversationId: string;
  upTo?: VersionVector;
}

/** WaitingPosition is a position of a batch's item that waits for replication. */
interface WaitingPosition {
  item: number;
  position: ReceiptPosition;
}

/** ReceiptWrite is a receipt to write, by which device, and the members of its conversation. */
interface ReceiptWrite {
  receipt: Receipt;
  memberIds: string[];
  deviceId: string;
}

/**
 * MessagingHandler implements MessagingService: every command a user issues, authorized
 * against the conversation's current members, persisted, then announced on the bus.
 */
export class MessagingHandler implements ServiceImpl<typeof MessagingService> {
  readonly #d: MessagingDeps;
  /** conversationReads shares one BatchReadConversations between reads made together. */
  readonly #conversationReads = new Batcher<string[], Map<string, Conversation>>({
    name: "conversation read",
    maxBatch: 100,
    maxInflight: 1,
    run: async (lists) => {
      const conversations = await inChunks(
        [...new Set(lists.flat())],
        async (conversationIds) =>
          (await this.#d.persistence.batchReadConversations({ conversationIds })).conversations,
      );
      const found = new Map(conversations.map((c) => [c.id, c]));
      return lists.map(() => found);
    },
  });

  /** changes limits each user's conversation creations and membership changes. */
  readonly #changes: RateLimiter | undefined;

  constructor(deps: MessagingDeps) {
    this.#d = deps;
    const perMinute = deps.conversationChangesPerMinute ?? DEFAULT_CONVERSATION_CHANGES_PER_MINUTE;
    this.#changes = perMinute > 0 ? new RateLimiter({ perMinute }) : undefined;
  }

  async sendMessage(req: SendMessageRequest, ctx: HandlerContext) {
    const draft = req.draft;
    if (!draft) throw invalidArgument("draft: required");
    const [outcome] = await this.#send([{ actor: callerOf(ctx), draft }]);
    if (!outcome || outcome.error)
      throw outcome?.error ?? new ConnectError("no outcome", Code.Internal);
    return { message: outcome.message, duplicate: outcome.duplicate };
  }

  async batchSendMessages(req: BatchSendMessagesRequest) {
    const items = req.items.map((item, i) => {
      if (!item.actor || !item.draft)
        throw invalidArgument(`items[${i}]: actor and draft are required`);
      return { actor: item.actor, draft: item.draft };
    });
    const outcomes = await this.#send(items);
    return {
      outcomes: outcomes.map((o) => ({
        message: o.message,
        duplicate: o.duplicate,
        error: o.error && errorFrame(o.error),
      })),
    };
  }

  async createConversation(req: CreateConversationRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    const c = req.conversation;
    if (!c) throw invalidArgument("conversation: required");
    if (c.memberIds.includes(caller.userId)) {
      throw invalidArgument("conversation.member_ids: list the other members, not yourself");
    }
    this.#limitChanges(caller);
    if (c.kind === ConversationKind.DIRECT) {
      if (c.memberIds.length !== 1) {
        throw invalidArgument(
          "conversation.member_ids: a direct conversation takes exactly one other user",
        );
      }
      if (c.title !== "")
        throw invalidArgument("conversation.title: direct conversations have no title");
      const other = c.memberIds[0] as string;
      const res = await this.#d.persistence.insertConversation({
        conversationId: directConversationId(caller.userId, other),
        kind: ConversationKind.DIRECT,
        createdBy: caller.userId,
        memberIds: [caller.userId, other].sort(),
      });
      return { conversation: res.conversation };
    }
    const memberIds = [caller.userId, ...c.memberIds];
    if (memberIds.length > this.#d.maxGroupSize) {
      throw invalidArgument(
        `conversation.member_ids: a group has at most ${this.#d.maxGroupSize} members`,
      );
    }
    const res = await this.#d.persistence.insertConversation({
      conversationId: groupConversationId(caller.userId, c.clientMsgId),
      kind: ConversationKind.GROUP,
      title: c.title,
      createdBy: caller.userId,
      memberIds,
      clientMsgId: c.clientMsgId,
      senderDeviceId: caller.deviceId,
    });
    if (res.message) {
      await this.#stored([
        { message: res.message, recipientIds: res.conversation?.memberIds ?? memberIds },
      ]);
    }
    return { conversation: res.conversation };
  }

  async addMembers(req: AddMembersRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    const change = req.change;
    if (!change) throw invalidArgument("change: required");
    this.#limitChanges(caller);
    const conversation = await this.#memberOf(change.conversationId, caller);
    if (conversation.kind !== ConversationKind.GROUP) {
      throw failedPrecondition("direct conversations cannot gain members; create a group");
    }
    const members = new Set(conversation.memberIds);
    const added = change.userIds.filter((u) => !members.has(u));
    if (added.length === 0) return { conversation };
    if (members.size + added.length > this.#d.maxGroupSize) {
      throw failedPrecondition(`a group has at most ${this.#d.maxGroupSize} members`);
    }
    const res = await this.#d.persistence.appendMessage({
      conversationId: change.conversationId,
      senderId: caller.userId,
      senderDeviceId: caller.deviceId,
      clientMsgId: change.clientMsgId,
      content: { case: "membership", value: { action: MembershipAction.ADDED, userIds: added } },
    });
    const after = await this.#conversation(change.conversationId);
    if (res.message) {
      await this.#stored([{ message: res.message, recipientIds: union(after.memberIds, added) }]);
    }
    return { conversation: after };
  }

  async removeMembers(req: RemoveMembersRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    const change = req.change;
    if (!change) throw invalidArgument("change: required");
    const leaving = change.userIds.length === 1 && change.userIds[0] === caller.userId;
    // Leaving is never limited: someone put into many groups must be able to get out of them.
    if (!leaving) this.#limitChanges(caller);
    const conversation = await this.#memberOf(change.conversationId, caller);
    if (conversation.kind !== ConversationKind.GROUP) {
      throw failedPrecondition("members of a direct conversation cannot be removed");
    }
    if (!leaving && conversation.createdBy !== caller.userId) {
      throw permissionDenied("only the group's creator can remove other members");
    }
    const removed = change.userIds.filter((u) => conversation.memberIds.includes(u));
    if (removed.length === 0) return { conversation };
    const res = await this.#d.persistence.appendMessage({
      conversationId: change.conversationId,
      senderId: caller.userId,
      senderDeviceId: caller.deviceId,
      clientMsgId: change.clientMsgId,
      content: {
        case: "membership",
        value: {
          action: leaving ? MembershipAction.LEFT : MembershipAction.REMOVED,
          userIds: removed,
        },
      },
    });
    // The removed members hear of their removal, then nothing more.
    if (res.message) {
      await this.#stored([{ message: res.message, recipientIds: conversation.memberIds }]);
    }
    return { conversation: await this.#conversation(change.conversationId) };
  }

  async getConversation(req: GetConversationRequest, ctx: HandlerContext) {
    return { conversation: await this.#memberOf(req.conversationId, callerOf(ctx)) };
  }

  async listConversations(req: ListConversationsRequest, ctx: HandlerContext) {
    const res = await this.#d.persistence.listMemberships({
      userId: callerOf(ctx).userId,
      pageToken: req.pageToken,
      limit: req.limit,
    });
    return { page: res.page };
  }

  async getHistory(req: GetHistoryRequest, ctx: HandlerContext) {
    const q = req.query;
    if (!q) throw invalidArgument("query: required");
    await this.#memberOf(q.conversationId, callerOf(ctx));
    const res = await this.#d.persistence.readHistory({ query: q });
    return { history: res.history };
  }

  async markDelivered(req: MarkDeliveredRequest, ctx: HandlerContext) {
    const [error] = await this.#advanceReceipts(
      ReceiptKind.DELIVERED,
      [{ actor: callerOf(ctx), conversations: req.conversations }],
      { waitForPeers: true },
    );
    if (error) throw error;
    return {};
  }

  async batchMarkDelivered(req: BatchMarkDeliveredRequest) {
    const items = req.items.map((item, i) => {
      if (!item.actor) throw invalidArgument(`items[${i}].actor: required`);
      return { actor: item.actor, conversations: item.conversations };
    });
    // Acks come here from every connection of a gateway in one shared batch, and the gateway
    // sends again those refused retryably (ack-retry.ts): a position this region's table has
    // not caught up with is refused at once rather than holding up everyone's acks.
    const errors = await this.#advanceReceipts(ReceiptKind.DELIVERED, items, {
      waitForPeers: false,
    });
    return { outcomes: errors.map((e) => ({ error: e && errorFrame(e) })) };
  }

  async markRead(req: MarkReadRequest, ctx: HandlerContext) {
    const read: MarkRead | undefined = req.read;
    if (!read) throw invalidArgument("read: required");
    const [error] = await this.#advanceReceipts(
      ReceiptKind.READ,
      [{ actor: callerOf(ctx), conversations: [read] }],
      { waitForPeers: true },
    );
    if (error) throw error;
    return {};
  }

  async getReceipts(req: GetReceiptsRequest, ctx: HandlerContext) {
    await this.#memberOf(req.conversationId, callerOf(ctx));
    const res = await this.#d.persistence.readReceipts({ conversationId: req.conversationId });
    return { receipts: res.receipts };
  }

  async setTyping(req: SetTypingRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    const t = req.typing;
    if (!t) throw invalidArgument("typing: required");
    const conversation = await this.#memberOf(t.conversationId, caller);
    await publishEvents(this.#d.bus, TOPICS.typing, [
      {
        key: t.conversationId,
        value: {
          typing: { conversationId: t.conversationId, userId: caller.userId, active: t.active },
          recipientIds: conversation.memberIds.filter((u) => u !== caller.userId),
          originRegion: this.#d.region,
        },
      },
    ]);
    return {};
  }

  async getPresence(req: GetPresenceRequest, ctx: HandlerContext) {
    const caller = callerOf(ctx);
    const visible = await this.#presenceVisible(caller.userId, req.userIds);
    const peers = this.#d.peers ?? [];
    const [sessions, remote] = await Promise.all([
      this.#d.registry.lookup(visible),
      peers.length > 0 ? this.#d.registry.remotePresence(visible, peers) : new Map(),
    ]);
    const users: Presence[] = visible.map((userId) => {
      const live = sessions.get(userId) ?? [];
      const since = live.length > 0 ? Math.min(...live.map((s) => s.connectedAtMs)) : 0;
      const regions = [...(live.length > 0 ? [this.#d.region] : []), ...(remote.get(userId) ?? [])];
      return create(PresenceSchema, {
        userId,
        online: regions.length > 0,
        changedAtMs: BigInt(since),
        regions,
      });
    });
    return { users };
  }

  /**
   * send authorizes and appends a batch of sends (one conversation read and one append call
   * for all of them) and publishes their message.stored events together. A send is
   * acknowledged only once its event is on the bus; a duplicate is published again, as the
   * first attempt may have died before publishing.
   */
  async #send(
    items: Array<{ actor: Caller; draft: MessageDraft }>,
    waited = false,
  ): Promise<SendResult[]> {
    const results: SendResult[] = items.map(() => ({ duplicate: false }));
    const conversations = await this.#conversations(items.map((i) => i.draft.conversationId));
    const appends: number[] = [];
    const doubtful: number[] = [];
    items.forEach(({ actor, draft }, i) => {
      if (conversations.get(draft.conversationId)?.memberIds.includes(actor.userId)) {
        appends.push(i);
      } else {
        doubtful.push(i);
      }
    });
    // Sends that this region cannot authorize yet go on without holding up the others.
    const later = this.#afterReplication(
      doubtful.map((i) => ({
        conversationId: items[i]?.draft.conversationId as string,
        userId: items[i]?.actor.userId as string,
      })),
      waited,
    ).then(async (wait) => {
      if (!wait) {
        for (const i of doubtful) {
          const id = items[i]?.draft.conversationId as string;
          results[i] = { duplicate: false, error: notMember(id) };
        }
        return;
      }
      const retried = await this.#send(
        doubtful.map((i) => items[i] as (typeof items)[number]),
        true,
      );
      retried.forEach((r, j) => {
        results[doubtful[j] as number] = r;
      });
    });
    if (appends.length === 0) {
      await later;
      return results;
    }
    const { outcomes } = await this.#d.persistence.batchAppendMessages({
      items: appends.map((i) => {
        const { actor, draft } = items[i] as (typeof items)[number];
        return {
          conversationId: draft.conversationId,
          senderId: actor.userId,
          senderDeviceId: actor.deviceId,
          clientMsgId: draft.clientMsgId,
          seenHlc: draft.seenHlc,
          content: { case: "text", value: draft.text },
        };
      }),
    });
    const stored: Array<{ message: Message; recipientIds: string[] }> = [];
    appends.forEach((i, j) => {
      const o = outcomes[j];
      if (o?.message) {
        results[i] = { message: o.message, duplicate: o.duplicate };
        const members = conversations.get(o.message.conversationId)?.memberIds ?? [];
        stored.push({ message: o.message, recipientIds: members });
      } else {
        results[i] = {
          duplicate: false,
          error: new ConnectError(
            o?.errorMessage || "persistence returned no message",
            (o?.errorCode as Code | undefined) || Code.Internal,
          ),
        };
      }
    });
    await this.#stored(stored);
    await later;
    return results;
  }

  /**
   * afterReplication waits, for users that the conversations stored here do not (yet) list
   * as members, until replication lists them or replicationWaitMs runs out. It resolves true
   * when there was anything to wait for (the caller then checks again), false otherwise.
   */
  async #afterReplication(
    wanted: Array<{ conversationId: string; userId: string }>,
    waited: boolean,
  ): Promise<boolean> {
    if (wanted.length === 0 || waited) return false;
    const ids = [...new Set(wanted.map((w) => w.conversationId))];
    return this.#waitFor(async () => {
      const found = await this.#conversations(ids);
      return wanted.every((w) => found.get(w.conversationId)?.memberIds.includes(w.userId));
    });
  }

  /**
   * waitFor checks `ready` with growing pauses until it holds or replicationWaitMs runs out.
   * It resolves false, at once, when no wait is configured (a region without peers).
   */
  async #waitFor(ready: () => Promise<boolean>): Promise<boolean> {
    const waitMs = this.#d.replicationWaitMs ?? 0;
    if (waitMs === 0) return false;
    const deadline = Date.now() + waitMs;
    for (let pause = 50; Date.now() < deadline; pause = Math.min(500, pause * 2)) {
      await new Promise((r) => setTimeout(r, Math.min(pause, deadline - Date.now())));
      if (await ready()) break;
    }
    return true;
  }

  /** stored publishes message.stored; the sends are acknowledged only after this resolves. */
  async #stored(stored: Array<{ message: Message; recipientIds: string[] }>) {
    if (stored.length === 0) return;
    for (const s of stored) await this.#d.hooks?.afterAppend?.(s.message);
    await publishEvents(
      this.#d.bus,
      TOPICS.messageStored,
      stored.map((s) => ({ key: s.message.conversationId, value: s })),
    );
  }

  /**
   * advanceReceipts advances one kind of receipt for a batch of actors (one conversation read,
   * one heads read and one write call for all of them) and publishes those that moved. Each
   * item gets the first error among its conversations; the others are still written.
   *
   * A position is only taken where it is real, so that no receipt claims what does not exist
   * (it would be relayed to the members, never come down again, and suppress pushes of the
   * messages it claims). Per origin region, against the conversation's last seq from there:
   * - this region's own messages are written here and read strongly, so no honest client is
   *   ever ahead of them: beyond the head is refused (INVALID_ARGUMENT). Refused, not clamped:
   *   a client ahead of the log has no idea what it received, and a clamped receipt would
   *   claim messages it may never have shown;
   * - another region's messages reach this table by replication, which may trail what a client
   *   saw in that region before it failed over here: beyond the head as replicated here, the
   *   position waits for replication like an unknown membership (`waitForPeers`, at most
   *   replicationWaitMs) and is then refused retryably (UNAVAILABLE). The gateway sends acks
   *   so refused again with backoff for minutes (ack-retry.ts), so a real one is taken once
   *   replication brings the message; one beyond what the other region ever wrote never is.
   */
  async #advanceReceipts(
    kind: ReceiptKind,
    items: Array<{ actor: Caller; conversations: ReceiptPosition[] }>,
    opts: { waitForPeers: boolean; waited?: boolean },
  ): Promise<Array<ConnectError | undefined>> {
    const errors: Array<ConnectError | undefined> = items.map(() => undefined);
    const ids = items.flatMap((i) => i.conversations.map((p) => p.conversationId));
    const [conversations, heads] = await Promise.all([this.#conversations(ids), this.#heads(ids)]);
    const sorted = this.#sortPositions(kind, items, conversations, heads);
    for (const r of sorted.refused) errors[r.item] ??= r.error;
    const { writes, doubtful, unproven } = sorted;
    const ahead: typeof unproven = [];
    const proven = await this.#provenByMessages(
      unproven.map((u) => u.position),
      heads,
    );
    unproven.forEach((u, j) => {
      const actor = items[u.item]?.actor as Caller;
      if (proven[j])
        writes.push({
          receipt: receiptOf(kind, actor, u.position),
          memberIds: u.memberIds,
          deviceId: actor.deviceId,
        });
      else if (opts.waitForPeers && !opts.waited) ahead.push(u);
      else errors[u.item] ??= u.error;
    });
    // Receipts of conversations this region cannot authorize yet, or of messages it has not
    // received yet, wait for replication on their own, without holding up the others.
    const retry = async (waiting: WaitingPosition[], wait: boolean, otherwise: ConnectError[]) => {
      const again = wait
        ? await this.#advanceReceipts(
            kind,
            waiting.map((d) => ({
              actor: items[d.item]?.actor as Caller,
              conversations: [d.position],
            })),
            { ...opts, waited: true },
          )
        : otherwise;
      again.forEach((err, j) => {
        const i = waiting[j]?.item as number;
        errors[i] ??= err;
      });
    };
    const later = Promise.all([
      this.#afterReplication(
        doubtful.map((d) => ({
          conversationId: d.position.conversationId,
          userId: items[d.item]?.actor.userId as string,
        })),
        opts.waited ?? false,
      ).then((wait) =>
        retry(
          doubtful,
          wait,
          doubtful.map((d) => notMember(d.position.conversationId)),
        ),
      ),
      this.#afterHeads(ahead.map((a) => a.position)).then((wait) =>
        retry(
          ahead,
          wait,
          ahead.map((a) => a.error),
        ),
      ),
    ]);
    await this.#writeReceipts(writes);
    await later;
    return errors;
  }

  /**
   * sortPositions decides what becomes of each position of a batch: written now, refused (with
   * the error its item gets), waiting for its membership to replicate here (doubtful), or
   * claiming another region's messages beyond the head known here (unproven).
   */
  #sortPositions(
    kind: ReceiptKind,
    items: Array<{ actor: Caller; conversations: ReceiptPosition[] }>,
    conversations: Map<string, Conversation>,
    heads: Map<string, Vector>,
  ) {
    const writes: ReceiptWrite[] = [];
    const refused: Array<{ item: number; error: ConnectError }> = [];
    const doubtful: WaitingPosition[] = [];
    const unproven: Array<WaitingPosition & { error: ConnectError; memberIds: string[] }> = [];
    const regions = new Set([this.#d.region, ...(this.#d.peers ?? [])]);
    items.forEach(({ actor, conversations: positions }, item) => {
      for (const p of positions) {
        // A position in a region that does not exist would be stored, relayed and never
        // come down again: refused, naming the region.
        const unknown = Object.keys(p.upTo?.seqs ?? {}).find((r) => !regions.has(r));
        if (unknown !== undefined) {
          const error = toConnectError(
            invalidArgument(
              `up_to: region "${unknown}" is not one of this deployment's (${[...regions].join(", ")})`,
            ),
          );
          refused.push({ item, error });
          continue;
        }
        const conversation = conversations.get(p.conversationId);
        if (!conversation?.memberIds.includes(actor.userId)) {
          doubtful.push({ item, position: p });
          continue;
        }
        const beyond = this.#beyondHead(p, heads.get(p.conversationId));
        if (beyond?.local) refused.push({ item, error: beyond.error });
        else if (beyond) {
          const memberIds = conversation.memberIds;
          unproven.push({ item, position: p, error: beyond.error, memberIds });
        } else {
          writes.push({
            receipt: receiptOf(kind, actor, p),
            memberIds: conversation.memberIds,
            deviceId: actor.deviceId,
          });
        }
      }
    });
    return { writes, refused, doubtful, unproven };
  }

  /**
   * writeReceipts writes receipts (one call per thousand) and publishes those that moved, to
   * be told to those they concern (DESIGN.md §4.5): the members whose messages the advance
   * covers, and the reader's other devices. Relaying every receipt to every member would be n²
   * frames per group message; the others fetch receipts when they show them (GetReceipts).
   * A write that did not advance but stands exactly where it was asked to was made by an
   * earlier try of the same ack whose publish failed (or by another device of the user at the
   * same position): it is published again, to every member, as whom it covered is unknown.
   */
  async #writeReceipts(writes: ReceiptWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const results = await inChunks(
      writes.map((w) => w.receipt),
      async (receipts) => (await this.#d.persistence.batchWriteReceipts({ receipts })).results,
    );
    const events = results.flatMap((r, j) => {
      const w = writes[j];
      if (!r.receipt || !w) return [];
      const stored = vectorFromProto(r.receipt.upTo);
      const asked = vectorFromProto(w.receipt.upTo);
      if (!r.advanced && !(dominates(stored, asked) && dominates(asked, stored))) return [];
      const recipientIds =
        !r.advanced || r.coversMany
          ? w.memberIds
          : concerned(w.memberIds, r.receipt.userId, r.coveredSenderIds);
      return [
        {
          key: r.receipt.conversationId,
          value: {
            receipt: r.receipt,
            recipientIds,
            originRegion: this.#d.region,
            fromDeviceId: w.deviceId,
          },
        },
      ];
    });
    await publishEvents(this.#d.bus, TOPICS.receiptUpdated, events);
  }

  /**
   * beyondHead finds where a position claims more than the conversation's messages as stored
   * here: a seq beyond the last one from its origin region (this region's first). `local` says
   * the origin is this region; the error is what the position is refused with.
   */
  #beyondHead(
    p: ReceiptPosition,
    heads: Vector | undefined,
  ): { local: boolean; error: ConnectError } | undefined {
    const region = this.#d.region;
    const claimed = Object.entries(p.upTo?.seqs ?? {}).filter(
      ([r, seq]) => seq > (heads?.get(r) ?? 0n),
    );
    const [origin, seq] = claimed.find(([r]) => r === region) ?? claimed[0] ?? [];
    if (origin === undefined || seq === undefined) return undefined;
    const head = heads?.get(origin) ?? 0n;
    if (origin === region) {
      return {
        local: true,
        error: toConnectError(
          invalidArgument(
            `up_to: ${origin} ${seq} is beyond the last message from ${origin} in conversation ${p.conversationId} (${head})`,
          ),
        ),
      };
    }
    return {
      local: false,
      error: toConnectError(
        new ChatError(
          Code.Unavailable,
          `up_to: ${origin} ${seq} of conversation ${p.conversationId} is not replicated to ${region} yet (the last message from ${origin} here is ${head}); retry`,
          { retryable: true },
        ),
      ),
    };
  }

  /**
   * provenByMessages says, per position beyond another region's head item, whether the
   * messages it claims are here all the same: items replicate in any order, so a message can
   * come before the head item that covers it (and a dead region's head item may never come,
   * while the region that takes over its backlog delivers its messages). A message at or past
   * the claimed seq proves it, seqs being dense at their origin.
   */
  async #provenByMessages(positions: ReceiptPosition[], heads: Map<string, Vector>) {
    const proven = positions.map(() => false);
    const queue = positions.map((p, i) => ({ p, i }));
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        const { p, i } = next;
        const head = heads.get(p.conversationId);
        const claims = Object.entries(p.upTo?.seqs ?? {}).filter(
          ([r, seq]) => r !== this.#d.region && seq > (head?.get(r) ?? 0n),
        );
        const found = await Promise.all(
          claims.map(async ([originRegion, seq]) => {
            const { messages } = await this.#d.persistence.readMessages({
              conversationId: p.conversationId,
              originRegion,
              afterSeq: seq - 1n,
              limit: 1,
            });
            return messages.length > 0;
          }),
        );
        proven[i] = found.every(Boolean);
      }
    };
    // A few reads at a time: positions beyond the heads are rare, unless a client makes them up.
    await Promise.all(Array.from({ length: Math.min(PROOF_READS, queue.length) }, worker));
    return proven;
  }

  /** heads reads, per conversation, the last seq from each region as stored here. */
  async #heads(ids: string[]): Promise<Map<string, Vector>> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return new Map();
    const all = await inChunks(
      unique,
      async (conversationIds) =>
        (await this.#d.persistence.batchReadHeads({ conversationIds })).heads,
    );
    return new Map(all.map((h) => [h.conversationId, vectorFromProto(h.heads)]));
  }

  /**
   * afterHeads waits until replication has brought every conversation's messages up to these
   * positions, or replicationWaitMs runs out; true when there was anything to wait for.
   */
  async #afterHeads(positions: ReceiptPosition[]): Promise<boolean> {
    if (positions.length === 0) return false;
    const ids = positions.map((p) => p.conversationId);
    return this.#waitFor(async () => {
      const heads = await this.#heads(ids);
      return positions.every((p) => !this.#beyondHead(p, heads.get(p.conversationId)));
    });
  }

  /**
   * limitChanges spends one of the caller's conversation changes (RESOURCE_EXHAUSTED,
   * retryable, when none is left): no one can put others into hundreds of conversations.
   */
  #limitChanges(caller: Caller): void {
    const limiter = this.#changes;
    const waitMs = limiter?.take(caller.userId) ?? 0;
    if (!limiter || waitMs === 0) return;
    throw new ChatError(
      Code.ResourceExhausted,
      `too many conversation changes: at most ${limiter.perMinute} per minute (creating conversations, adding and removing members); retry in ${Math.ceil(waitMs / 1000)} s`,
      { retryable: true },
    );
  }

  /**
   * conversations reads conversations by id; unknown ids are left out. Reads made while one
   * is in flight share the next call, so concurrent batches cost one RPC between them.
   */
  #conversations(ids: string[]): Promise<Map<string, Conversation>> {
    if (ids.length === 0) return Promise.resolve(new Map());
    return this.#conversationReads.add(ids);
  }

  async #find(id: string): Promise<Conversation | undefined> {
    try {
      const res = await this.#d.persistence.readConversation({ conversationId: id });
      return res.conversation;
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.NotFound) return undefined;
      throw err;
    }
  }

  async #conversation(id: string): Promise<Conversation> {
    const conversation = await this.#find(id);
    if (!conversation) throw notFound(`conversation ${id} not found`);
    return conversation;
  }

  /**
   * memberOf returns the conversation if the caller is a member. Unknown conversations and
   * foreign ones are both PermissionDenied, so ids cannot be probed for existence.
   */
  async #memberOf(id: string, caller: Caller): Promise<Conversation> {
    let conversation = await this.#find(id);
    if (
      !conversation?.memberIds.includes(caller.userId) &&
      (await this.#afterReplication([{ conversationId: id, userId: caller.userId }], false))
    ) {
      conversation = await this.#find(id);
    }
    if (!conversation?.memberIds.includes(caller.userId)) throw notMember(id);
    return conversation;
  }

  /**
   * presenceVisible filters `userIds` to those whose presence `userId` may see: themself, and
   * each user with whom they share a conversation in which both have sent a message. Being put
   * into a conversation (or written to) by someone is no consent to be watched by them; writing
   * in it is. The rule is symmetric: whoever may watch a user may be watched by them.
   */
  async #presenceVisible(userId: string, userIds: string[]): Promise<string[]> {
    const others = userIds.filter((u) => u !== userId);
    const shared = new Map<string, string[]>();
    if (others.length > 0) {
      const mine = await this.#conversationIds(userId);
      for (const other of others) {
        const theirs = await this.#conversationIds(other);
        shared.set(
          other,
          [...theirs].filter((id) => mine.has(id)),
        );
      }
    }
    const senders = await this.#senders([...new Set([...shared.values()].flat())]);
    const bothWrote = (id: string, other: string) =>
      senders.get(id)?.has(userId) === true && senders.get(id)?.has(other) === true;
    return userIds.filter(
      (u) => u === userId || (shared.get(u) ?? []).some((id) => bothWrote(id, u)),
    );
  }

  /** senders reads, per conversation, who has sent a message in it. */
  async #senders(ids: string[]): Promise<Map<string, Set<string>>> {
    if (ids.length === 0) return new Map();
    const all = await inChunks(
      ids,
      async (conversationIds) =>
        (await this.#d.persistence.batchReadSenders({ conversationIds })).conversations,
    );
    return new Map(all.map((c) => [c.conversationId, new Set(c.userIds)]));
  }

  async #conversationIds(userId: string): Promise<Set<string>> {
    const ids = new Set<string>();
    let pageToken = "";
    do {
      const res = await this.#d.persistence.listMemberships({ userId, pageToken, limit: 500 });
      for (const c of res.page?.conversations ?? []) ids.add(c.id);
      pageToken = res.page?.nextPageToken ?? "";
    } while (pageToken !== "" && ids.size < 10_000);
    return ids;
  }
}

/** SendResult is how one send of a batch went. */
interface SendResult {
  message?: Message;
  duplicate: boolean;
  error?: ConnectError;
}

/**
 * notMember is the answer for a conversation the caller is not in. Unknown conversations and
 * foreign ones get the same answer, so ids cannot be probed for existence.
 */
function notMember(conversationId: string): ConnectError {
  return toConnectError(permissionDenied(`you are not a member of conversation ${conversationId}`));
}

/** receiptOf is the receipt a position asks for. */
function receiptOf(kind: ReceiptKind, actor: Caller, p: ReceiptPosition): Receipt {
  return create(ReceiptSchema, {
    conversationId: p.conversationId,
    userId: actor.userId,
    kind,
    upTo: p.upTo,
  });
}

/** errorFrame turns a failed item of a batch into the error its caller sees. */
function errorFrame(err: ConnectError): ErrorFrame {
  return create(ErrorSchema, {
    code: err.code as number as ErrorCode,
    message: err.rawMessage,
    retryable: isRetryableCode(err.code),
  });
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}

/** concerned are the members a receipt's advance concerns: its reader and the covered senders. */
function concerned(memberIds: string[], readerId: string, senderIds: string[]): string[] {
  const senders = new Set(senderIds);
  return memberIds.filter((id) => id === readerId || senders.has(id));
}
