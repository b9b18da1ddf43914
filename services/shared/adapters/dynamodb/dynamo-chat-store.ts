import {
  BatchGetItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandInput,
  type TransactWriteItem,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type ConversationKind,
  type Message,
  MessageSchema,
} from "../../../../gen/chat/v1/types_pb.ts";
import { keys } from "../../item-keys.ts";
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
import {
  b,
  big,
  bool,
  bytes,
  cancellationCodes,
  expiresIn,
  flag,
  type Item,
  n,
  num,
  s,
  str,
} from "./client.ts";
import { GSI_BY_ORDER, TTL_ATTRIBUTE } from "./table.ts";

/** DynamoChatStoreOptions tune retention and the outbox. */
export interface DynamoChatStoreOptions {
  /** sendDedupSeconds is how long a client_msg_id is remembered (retries come within minutes). */
  sendDedupSeconds?: number;
  /** outboxShards spreads the routing outbox over partitions (writes per second per region). */
  outboxShards?: number;
  /** peers are the other regions, whose replicated items (copies of sends, pushes) count too. */
  peers?: readonly string[];
}

const OUTBOX_BUCKET_MS = 10 * 60_000;
/** PUSH_CLAIM_DAYS is how long a push record is kept: no push is sent for older messages. */
const PUSH_CLAIM_DAYS = 7;

/**
 * DynamoChatStore is the ChatStore on DynamoDB (a Global Table in production; DynamoDB Local in
 * tests). See table.ts for the layout. An append is one TransactWriteItems: the head (only if
 * its seq is still the expected one), the message, the dedup key (only if new), the outbox
 * entry, and any membership and metadata items. Every read that decides a write is strongly
 * consistent; history reads the by-order index, which trails writes by a fraction of a second.
 */
export class DynamoChatStore implements ChatStore {
  readonly region: string;
  readonly #db: DynamoDBClient;
  readonly #table: string;
  readonly #dedupSeconds: number;
  readonly #shards: number;
  readonly #regions: string[];

  constructor(
    db: DynamoDBClient,
    table: string,
    region: string,
    opts: DynamoChatStoreOptions = {},
  ) {
    this.#db = db;
    this.#table = table;
    this.region = region;
    this.#dedupSeconds = opts.sendDedupSeconds ?? 7 * 86_400;
    this.#shards = opts.outboxShards ?? 8;
    this.#regions = [region, ...(opts.peers ?? []).filter((p) => p !== region)];
  }

  async getConversation(id: string): Promise<StoredConversation | undefined> {
    // mbr#… and meta#… are adjacent: one query reads members and metadata.
    const items = await this.#queryAll({
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :a AND :z",
      ExpressionAttributeValues: {
        ":pk": s(keys.conversation(id)),
        ":a": s("mbr#"),
        ":z": s("meta#~"),
      },
      ConsistentRead: true,
    });
    let meta: ConversationMeta | undefined;
    const byUser = new Map<string, Map<string, MembershipItem>>();
    for (const item of items) {
      const sk = str(item, "sk");
      if (sk.startsWith("meta#")) {
        meta ??= metaOf(id, item);
        continue;
      }
      const [, user, region] = sk.split("#") as [string, string, string];
      const regions = byUser.get(user) ?? new Map<string, MembershipItem>();
      regions.set(region, { member: flag(item, "member"), hlc: big(item, "hlc") });
      byUser.set(user, regions);
    }
    if (!meta) return undefined;
    const memberIds = [...byUser].filter(([, r]) => latestMembership(r)?.member).map(([u]) => u);
    return { ...meta, memberIds: memberIds.sort() };
  }

  async listMemberships(userId: string, page: { after?: string; limit: number }) {
    const conversations: ConversationMeta[] = [];
    let current:
      | { id: string; meta: ConversationMeta; regions: Map<string, MembershipItem> }
      | undefined;
    const flush = () => {
      if (current && latestMembership(current.regions)?.member) conversations.push(current.meta);
    };
    let start: Item | undefined;
    let exhausted = false;
    let more = false;
    scan: for (;;) {
      const res = await this.#db.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
          ExpressionAttributeValues: {
            ":pk": s(keys.user(userId)),
            ":from": s(page.after ? `conv#${page.after}#~` : "conv#"),
            ":to": s("conv#~"),
          },
          ExclusiveStartKey: start,
          Limit: Math.min(1000, page.limit * 2 + 2),
          ConsistentRead: true,
        }),
      );
      for (const item of res.Items ?? []) {
        const [, id, region] = str(item, "sk").split("#") as [string, string, string];
        if (current?.id !== id) {
          flush();
          if (conversations.length >= page.limit) {
            more = true;
            break scan;
          }
          current = { id, meta: metaOf(id, item), regions: new Map() };
        }
        current.regions.set(region, { member: flag(item, "member"), hlc: big(item, "hlc") });
      }
      start = res.LastEvaluatedKey;
      if (!start) {
        exhausted = true;
        break;
      }
    }
    if (exhausted) {
      flush();
      if (conversations.length > page.limit) {
        conversations.length = page.limit;
        more = true;
      }
    }
    return { conversations, more };
  }

  async createConversation(meta: ConversationMeta, memberIds: string[], hlc: bigint) {
    const items: TransactWriteItem[] = [
      {
        Put: {
          TableName: this.#table,
          Item: this.#metaItem(meta),
          ConditionExpression: "attribute_not_exists(pk)",
        },
      },
      ...this.#membershipPuts(meta, memberIds, true, hlc),
    ];
    try {
      await this.#transact(items);
    } catch (err) {
      if (cancellationCodes(err)?.[0] === "ConditionalCheckFailed") return; // already there
      throw err;
    }
  }

  async head(conversationId: string): Promise<LogHead> {
    const item = await this.#get(keys.conversation(conversationId), keys.head(this.region));
    return item ? { seq: big(item, "seq"), hlc: big(item, "hlc") } : { seq: 0n, hlc: 0n };
  }

  async heads(conversationIds: string[]): Promise<Map<string, Vector>> {
    const out = new Map<string, Vector>(conversationIds.map((id) => [id, new Map()]));
    // One BatchGetItem per 100 head items: every configured region's head of each conversation.
    const items = await this.#batchGet(
      [...new Set(conversationIds)].flatMap((id) =>
        this.#regions.map((r): [string, string] => [keys.conversation(id), keys.head(r)]),
      ),
    );
    for (const item of items) {
      const region = str(item, "sk").slice("head#".length);
      out.get(str(item, "pk").slice(2))?.set(region, big(item, "seq"));
    }
    return out;
  }

  async findSend(conversationId: string, senderId: string, clientMsgId: string) {
    let best: Message | undefined;
    for (const m of await this.#copies(conversationId, [{ senderId, clientMsgId }])) {
      if (!best || compareOrder(orderKeyOf(m), orderKeyOf(best)) < 0) best = m;
    }
    return best;
  }

  async otherCopies(conversationId: string, messages: Message[]): Promise<Message[]> {
    return this.#copies(conversationId, messages);
  }

  /**
   * copies reads the copies of sends through every region's dedup items: one BatchGetItem for
   * the dedup items, one for the messages they point at. A send given with its origin region
   * skips that region's copy (the caller has it).
   */
  async #copies(
    conversationId: string,
    sends: Array<{ senderId: string; clientMsgId: string; originRegion?: string }>,
  ): Promise<Message[]> {
    if (sends.length === 0) return [];
    const pk = keys.conversation(conversationId);
    const dedups = await this.#batchGet(
      sends.flatMap((x) =>
        this.#regions
          .filter((r) => r !== x.originRegion)
          .map((r): [string, string] => [pk, keys.send(r, x.senderId, x.clientMsgId)]),
      ),
    );
    const found = dedups
      .filter((d) => !expired(d))
      .map((d): [string, string] => [
        pk,
        keys.message(str(d, "sk").split("#")[1] as string, big(d, "seq")),
      ]);
    const messages = await this.#batchGet(found);
    return messages.map((item) => fromBinary(MessageSchema, bytes(item, "m")));
  }

  async append(cmd: AppendCommand): Promise<void> {
    const m = cmd.message;
    if (m.originRegion !== this.region) {
      throw new Error(`append of a ${m.originRegion} message in region ${this.region}`);
    }
    if (m.seq !== cmd.expectedSeq + 1n) throw new Error("message seq must be expectedSeq + 1");
    const pk = keys.conversation(m.conversationId);
    const shard = shardOf(m.conversationId, this.#shards);
    const items: TransactWriteItem[] = [
      {
        Put: {
          TableName: this.#table,
          Item: { pk: s(pk), sk: s(keys.head(this.region)), seq: n(m.seq), hlc: n(m.hlc) },
          ConditionExpression:
            cmd.expectedSeq === 0n ? "attribute_not_exists(pk)" : "seq = :expected",
          ExpressionAttributeValues:
            cmd.expectedSeq === 0n ? undefined : { ":expected": n(cmd.expectedSeq) },
        },
      },
      {
        Put: {
          TableName: this.#table,
          Item: {
            pk: s(pk),
            sk: s(keys.message(this.region, m.seq)),
            gsi1pk: s(pk),
            gsi1sk: s(keys.order(m.hlc, this.region, m.seq)),
            m: b(toBinary(MessageSchema, m)),
          },
        },
      },
      {
        Put: {
          TableName: this.#table,
          Item: {
            pk: s(pk),
            sk: s(keys.send(this.region, m.senderId, m.clientMsgId)),
            seq: n(m.seq),
            [TTL_ATTRIBUTE]: expiresIn(this.#dedupSeconds / 86_400),
          },
          // A dedup item past its expiry may linger until DynamoDB deletes it; it no longer counts.
          ConditionExpression: "attribute_not_exists(pk) OR #exp < :now",
          ExpressionAttributeNames: { "#exp": TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":now": n(Math.floor(Date.now() / 1000)) },
        },
      },
      {
        Put: {
          TableName: this.#table,
          Item: {
            pk: s(keys.outbox(this.region, bucketOf(cmd.appendedAtMs), shard)),
            sk: s(keys.outboxEntry(cmd.appendedAtMs, m.conversationId, m.seq)),
            conv: s(m.conversationId),
            seq: n(m.seq),
            [TTL_ATTRIBUTE]: expiresIn(1, cmd.appendedAtMs),
          },
        },
      },
    ];
    if (cmd.create)
      items.push({ Put: { TableName: this.#table, Item: this.#metaItem(cmd.create) } });
    if (cmd.membership) {
      items.push(
        ...this.#membershipPuts(
          cmd.membership.conversation,
          cmd.membership.userIds,
          cmd.membership.member,
          m.hlc,
        ),
      );
    }
    try {
      await this.#transact(items);
    } catch (err) {
      const codes = cancellationCodes(err);
      if (!codes) throw err;
      if (codes[2] === "ConditionalCheckFailed") {
        const existing = await this.findSend(m.conversationId, m.senderId, m.clientMsgId);
        if (existing) throw new DuplicateSendError(existing);
      }
      if (codes.some((c) => c === "ConditionalCheckFailed" || c === "TransactionConflict")) {
        throw new SeqConflictError();
      }
      throw err;
    }
  }

  async history(conversationId: string, before: OrderKey | undefined, limit: number) {
    const pk = keys.conversation(conversationId);
    const res = await this.#db.send(
      new QueryCommand({
        TableName: this.#table,
        IndexName: GSI_BY_ORDER,
        KeyConditionExpression: before ? "gsi1pk = :pk AND gsi1sk < :before" : "gsi1pk = :pk",
        ExpressionAttributeValues: before
          ? { ":pk": s(pk), ":before": s(keys.order(before.hlc, before.region, before.seq)) }
          : { ":pk": s(pk) },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (res.Items ?? []).map((item) => fromBinary(MessageSchema, bytes(item, "m")));
  }

  async messagesAfter(
    conversationId: string,
    originRegion: string,
    afterSeq: bigint,
    limit: number,
  ) {
    const res = await this.#db.send(
      new QueryCommand({
        TableName: this.#table,
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
        ExpressionAttributeValues: {
          ":pk": s(keys.conversation(conversationId)),
          ":from": s(keys.message(originRegion, afterSeq + 1n)),
          ":to": s(`msg#${originRegion}#~`),
        },
        Limit: limit,
        ConsistentRead: true,
      }),
    );
    return (res.Items ?? []).map((item) => fromBinary(MessageSchema, bytes(item, "m")));
  }

  async routedSeq(conversationId: string, region = this.region) {
    const item = await this.#get(keys.conversation(conversationId), keys.routed(region));
    return item ? big(item, "seq") : 0n;
  }

  async advanceRoutedSeq(conversationId: string, seq: bigint) {
    await this.#raise(keys.conversation(conversationId), keys.routed(this.region), seq);
  }

  async unrouted(fromMs: number, toMs: number, limit: number) {
    const entries = await this.#outboxEntries(this.region, fromMs, toMs);
    const cursors = await this.#cursors(
      entries.map((e) => e.conv),
      () => keys.routed(this.region),
    );
    const wanted = entries.filter((e) => e.seq > (cursors.get(e.conv) ?? 0n)).slice(0, limit);
    return this.#messagesOf(this.region, wanted);
  }

  async untakenOver(origin: string, fromMs: number, toMs: number, limit: number) {
    const entries = await this.#outboxEntries(origin, fromMs, toMs);
    const cursors = await this.#cursors(
      entries.map((e) => e.conv),
      () => keys.takeover(this.region, origin),
    );
    const wanted = entries.filter((e) => e.seq > (cursors.get(e.conv) ?? 0n)).slice(0, limit);
    return this.#messagesOf(origin, wanted);
  }

  async takeovers(conversationId: string, origin: string): Promise<Map<string, bigint>> {
    const items = await this.#queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": s(keys.conversation(conversationId)), ":p": s("tk#") },
      ConsistentRead: true,
    });
    const out = new Map<string, bigint>();
    for (const item of items) {
      const [, region, o] = str(item, "sk").split("#") as [string, string, string];
      if (o === origin) out.set(region, big(item, "seq"));
    }
    return out;
  }

  async advanceTakeover(conversationId: string, origin: string, seq: bigint) {
    if (origin === this.region) throw new Error("a region does not take over its own messages");
    await this.#raise(keys.conversation(conversationId), keys.takeover(this.region, origin), seq);
  }

  /** outboxEntries reads a region's outbox entries appended between fromMs and toMs. */
  async #outboxEntries(region: string, fromMs: number, toMs: number) {
    const entries: Array<{ conv: string; seq: bigint }> = [];
    for (let bucket = bucketOf(fromMs); bucket <= bucketOf(toMs); bucket++) {
      for (let shard = 0; shard < this.#shards; shard++) {
        const items = await this.#queryAll({
          KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
          ExpressionAttributeValues: {
            ":pk": s(keys.outbox(region, bucket, shard)),
            ":from": s(String(fromMs).padStart(15, "0")),
            ":to": s(`${String(toMs).padStart(15, "0")}#~`),
          },
        });
        for (const item of items) entries.push({ conv: str(item, "conv"), seq: big(item, "seq") });
      }
    }
    return entries;
  }

  /** cursors reads one cursor item (routing, takeover) per conversation. */
  async #cursors(conversations: string[], sk: () => string): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    for (const item of await this.#batchGet(
      [...new Set(conversations)].map((c) => [keys.conversation(c), sk()]),
    )) {
      out.set(str(item, "pk").slice(2), big(item, "seq"));
    }
    return out;
  }

  async #messagesOf(region: string, wanted: Array<{ conv: string; seq: bigint }>) {
    const messages = await this.#batchGet(
      wanted.map((e) => [keys.conversation(e.conv), keys.message(region, e.seq)]),
    );
    return messages
      .map((item) => fromBinary(MessageSchema, bytes(item, "m")))
      .sort((x, y) =>
        x.conversationId === y.conversationId
          ? Number(x.seq - y.seq)
          : x.conversationId < y.conversationId
            ? -1
            : 1,
      );
  }

  /** raise sets a cursor item's seq, only upwards. */
  async #raise(pk: string, sk: string, seq: bigint) {
    try {
      await this.#db.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: { pk: s(pk), sk: s(sk) },
          UpdateExpression: "SET seq = :seq",
          ConditionExpression: "attribute_not_exists(seq) OR seq < :seq",
          ExpressionAttributeValues: { ":seq": n(seq) },
        }),
      );
    } catch (err) {
      if ((err as Error).name !== "ConditionalCheckFailedException") throw err;
    }
  }

  async writeReceipt(conversationId: string, userId: string, kind: ReceiptKindName, upTo: Vector) {
    const pk = keys.conversation(conversationId);
    const prefix = `rcpt#${userId}#${kind}#`;
    for (let attempt = 0; ; attempt++) {
      const items = await this.#queryAll({
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues: { ":pk": s(pk), ":p": s(prefix) },
        ConsistentRead: true,
      });
      const before = mergeVectors(items.map((i) => vectorOf(i)));
      const mine = items.find((i) => str(i, "sk") === prefix + this.region);
      const next = mergeMax(mine ? vectorOf(mine) : new Map(), upTo);
      const merged = mergeMax(before, upTo);
      const advanced = [...merged].some(([r, seq]) => seq > (before.get(r) ?? 0n));
      const grew = [...next].some(([r, seq]) => seq > (mine ? (vectorOf(mine).get(r) ?? 0n) : 0n));
      if (!grew) return { merged, before, advanced };
      const version = mine ? big(mine, "v") : 0n;
      try {
        await this.#db.send(
          new PutItemCommand({
            TableName: this.#table,
            Item: {
              pk: s(pk),
              sk: s(prefix + this.region),
              up: { M: Object.fromEntries([...next].map(([r, seq]) => [r, n(seq)])) },
              v: n(version + 1n),
            },
            ConditionExpression: mine ? "v = :v" : "attribute_not_exists(pk)",
            ExpressionAttributeValues: mine ? { ":v": n(version) } : undefined,
          }),
        );
        return { merged, before, advanced };
      } catch (err) {
        if ((err as Error).name !== "ConditionalCheckFailedException" || attempt >= 10) throw err;
      }
    }
  }

  async readReceipts(conversationId: string): Promise<StoredReceipt[]> {
    const items = await this.#queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": s(keys.conversation(conversationId)), ":p": s("rcpt#") },
    });
    const merged = new Map<string, Vector>();
    for (const item of items) {
      const [, user, kind] = str(item, "sk").split("#") as [string, string, string];
      const key = `${user}\u0000${kind}`;
      merged.set(key, mergeMax(merged.get(key) ?? new Map(), vectorOf(item)));
    }
    return [...merged].map(([key, upTo]) => {
      const [userId, kind] = key.split("\u0000") as [string, ReceiptKindName];
      return { userId, kind, upTo };
    });
  }

  async savePushToken(userId: string, token: StoredPushToken) {
    await this.#db.send(
      new PutItemCommand({
        TableName: this.#table,
        Item: {
          pk: s(keys.user(userId)),
          sk: s(keys.pushToken(token.deviceId, this.region)),
          platform: n(token.platform),
          token: s(token.token),
          at: n(token.updatedAtMs),
        },
      }),
    );
  }

  async deletePushToken(userId: string, deviceId: string, atMs: number) {
    const current = (await this.#pushTokens(userId)).get(deviceId);
    if (!current) return;
    await this.savePushToken(userId, { ...current, token: "", updatedAtMs: atMs });
  }

  async listPushTokens(userId: string): Promise<StoredPushToken[]> {
    return [...(await this.#pushTokens(userId)).values()].filter((t) => t.token !== "");
  }

  async claimPush(userId: string, message: MessageRef): Promise<boolean> {
    const pk = keys.conversation(message.conversationId);
    const mine = keys.pushSent(userId, message.originRegion, message.seq, this.region);
    const prefix = mine.slice(0, mine.length - this.region.length);
    const claims = await this.#queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": s(pk), ":p": s(prefix) },
      ConsistentRead: true,
    });
    if (claims.length > 0) return false;
    try {
      await this.#db.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: {
            pk: s(pk),
            sk: s(mine),
            at: n(Date.now()),
            [TTL_ATTRIBUTE]: expiresIn(PUSH_CLAIM_DAYS),
          },
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === "ConditionalCheckFailedException") return false;
      throw err;
    }
  }

  async probe(instanceId: string, nonce: bigint): Promise<boolean> {
    const pk = keys.canary(this.region);
    await this.#db.send(
      new PutItemCommand({
        TableName: this.#table,
        Item: { pk: s(pk), sk: s(instanceId), nonce: n(nonce), [TTL_ATTRIBUTE]: expiresIn(1) },
      }),
    );
    const item = await this.#get(pk, instanceId);
    return item !== undefined && big(item, "nonce") === nonce;
  }

  async #pushTokens(userId: string): Promise<Map<string, StoredPushToken>> {
    const items = await this.#queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": s(keys.user(userId)), ":p": s("push#") },
      ConsistentRead: true,
    });
    const byDevice = new Map<string, StoredPushToken[]>();
    for (const item of items) {
      const deviceId = str(item, "sk").split("#")[1] as string;
      const list = byDevice.get(deviceId) ?? [];
      list.push({
        deviceId,
        platform: num(item, "platform") as StoredPushToken["platform"],
        token: str(item, "token"),
        updatedAtMs: num(item, "at"),
      });
      byDevice.set(deviceId, list);
    }
    const out = new Map<string, StoredPushToken>();
    for (const [device, list] of byDevice) {
      const t = newestPushToken(list);
      if (t) out.set(device, t);
    }
    return out;
  }

  #metaItem(meta: ConversationMeta): Item {
    return {
      pk: s(keys.conversation(meta.id)),
      sk: s(keys.meta(this.region)),
      kind: n(meta.kind),
      title: s(meta.title),
      createdBy: s(meta.createdBy),
    };
  }

  #membershipPuts(
    meta: ConversationMeta,
    userIds: string[],
    member: boolean,
    hlc: bigint,
  ): TransactWriteItem[] {
    return userIds.flatMap((user): TransactWriteItem[] => [
      {
        Put: {
          TableName: this.#table,
          Item: {
            pk: s(keys.conversation(meta.id)),
            sk: s(keys.member(user, this.region)),
            member: bool(member),
            hlc: n(hlc),
          },
        },
      },
      {
        Put: {
          TableName: this.#table,
          Item: {
            pk: s(keys.user(user)),
            sk: s(keys.membership(meta.id, this.region)),
            member: bool(member),
            hlc: n(hlc),
            kind: n(meta.kind),
            title: s(meta.title),
            createdBy: s(meta.createdBy),
          },
        },
      },
    ]);
  }

  async #transact(items: TransactWriteItem[]) {
    await this.#db.send(new TransactWriteItemsCommand({ TransactItems: items }));
  }

  async #get(pk: string, sk: string): Promise<Item | undefined> {
    const res = await this.#db.send(
      new GetItemCommand({
        TableName: this.#table,
        Key: { pk: s(pk), sk: s(sk) },
        ConsistentRead: true,
      }),
    );
    return res.Item;
  }

  async #queryAll(input: Omit<QueryCommandInput, "TableName">): Promise<Item[]> {
    const out: Item[] = [];
    let start: Item | undefined;
    do {
      const res = await this.#db.send(
        new QueryCommand({ ...input, TableName: this.#table, ExclusiveStartKey: start }),
      );
      out.push(...(res.Items ?? []));
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /** batchGet reads many items (100 per request), retrying unprocessed keys. */
  async #batchGet(pairs: Array<[string, string]>): Promise<Item[]> {
    const out: Item[] = [];
    for (let i = 0; i < pairs.length; i += 100) {
      let request: Record<string, { Keys: Item[]; ConsistentRead: boolean }> | undefined = {
        [this.#table]: {
          Keys: pairs.slice(i, i + 100).map(([pk, sk]) => ({ pk: s(pk), sk: s(sk) })),
          ConsistentRead: true,
        },
      };
      for (let attempt = 0; request && Object.keys(request).length > 0; attempt++) {
        const res = await this.#db.send(new BatchGetItemCommand({ RequestItems: request }));
        out.push(...(res.Responses?.[this.#table] ?? []));
        request = res.UnprocessedKeys as typeof request;
        if (request && Object.keys(request).length > 0) {
          await new Promise((r) =>
            setTimeout(r, Math.random() * Math.min(1_000, 50 * 2 ** attempt)),
          );
        }
      }
    }
    return out;
  }
}

function metaOf(id: string, item: Item): ConversationMeta {
  return {
    id,
    kind: num(item, "kind") as ConversationKind,
    title: str(item, "title"),
    createdBy: str(item, "createdBy"),
  };
}

function vectorOf(item: Item): Vector {
  const out: Vector = new Map();
  for (const [region, v] of Object.entries(item.up?.M ?? {})) if (v.N) out.set(region, BigInt(v.N));
  return out;
}

function expired(item: Item): boolean {
  const exp = item[TTL_ATTRIBUTE]?.N;
  return exp !== undefined && Number(exp) * 1000 < Date.now();
}

function bucketOf(ms: number): number {
  return Math.floor(ms / OUTBOX_BUCKET_MS);
}

function shardOf(conversationId: string, shards: number): number {
  let h = 0;
  for (let i = 0; i < conversationId.length; i++) h = (h * 31 + conversationId.charCodeAt(i)) >>> 0;
  return h % shards;
}
