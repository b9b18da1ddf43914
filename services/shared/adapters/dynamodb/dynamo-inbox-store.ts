import {
  BatchGetItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  type TransactWriteItem,
  TransactWriteItemsCommand,
} from "@aws-sdk/client-dynamodb";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type InboxEntry,
  InboxEntrySchema,
  type Message,
} from "../../../../gen/chat/v1/types_pb.ts";
import { keys, pad20 } from "../../item-keys.ts";
import type { InboxStore } from "../../ports/inbox-store.ts";
import type { Vector } from "../../version-vector.ts";
import { b, big, bytes, cancellationCodes, expiresIn, type Item, n, s, str } from "./client.ts";
import { TTL_ATTRIBUTE } from "./table.ts";

/** Messages per transaction: the head plus an entry and a dedup item each, within 100 items. */
const PER_TRANSACTION = 49;

/**
 * DynamoInboxStore is the InboxStore on DynamoDB. Each user has one inbox partition per
 * region (`i#<user>#<region>`): a head item and the entries, dense by seq, plus a dedup item
 * per message so a redelivered message returns its first entry. Entries expire after the
 * retention (DynamoDB TTL); reads ignore expired items even before DynamoDB deletes them.
 */
export class DynamoInboxStore implements InboxStore {
  readonly region: string;
  readonly #db: DynamoDBClient;
  readonly #table: string;
  readonly #regions: string[];
  readonly #retentionSeconds: number;

  constructor(
    db: DynamoDBClient,
    table: string,
    region: string,
    opts: { peers?: readonly string[]; retentionSeconds?: number } = {},
  ) {
    this.#db = db;
    this.#table = table;
    this.region = region;
    this.#regions = [region, ...(opts.peers ?? [])];
    this.#retentionSeconds = opts.retentionSeconds ?? 30 * 86_400;
  }

  async append(items: Array<{ userId: string; message: Message }>): Promise<InboxEntry[]> {
    const out: InboxEntry[] = new Array(items.length);
    const byUser = new Map<string, number[]>();
    items.forEach((item, i) => {
      byUser.set(item.userId, [...(byUser.get(item.userId) ?? []), i]);
    });
    await Promise.all(
      [...byUser].map(async ([userId, indexes]) => {
        const entries = await this.#appendForUser(
          userId,
          indexes.map((i) => items[i]?.message as Message),
        );
        entries.forEach((e, j) => {
          out[indexes[j] as number] = e;
        });
      }),
    );
    return out;
  }

  async #appendForUser(userId: string, messages: Message[]): Promise<InboxEntry[]> {
    const pk = keys.inbox(userId, this.region);
    for (let attempt = 0; ; attempt++) {
      // Which of these messages are in the inbox already (a redelivery)?
      const known = await this.#existing(pk, messages);
      const head = await this.#head(pk);
      const result: InboxEntry[] = [];
      const fresh: Array<{ index: number; entry: InboxEntry }> = [];
      let seq = head;
      const seen = new Map<string, InboxEntry>();
      for (const m of messages) {
        const key = dedupKey(m);
        const existing = known.get(key) ?? seen.get(key);
        if (existing) {
          result.push(existing);
          continue;
        }
        seq++;
        const entry = create(InboxEntrySchema, { region: this.region, seq, message: m });
        seen.set(key, entry);
        fresh.push({ index: result.length, entry });
        result.push(entry);
      }
      if (fresh.length === 0) return result;
      try {
        let expected = head;
        for (let i = 0; i < fresh.length; i += PER_TRANSACTION) {
          const chunk = fresh.slice(i, i + PER_TRANSACTION);
          const last = chunk.at(-1)?.entry.seq as bigint;
          await this.#db.send(
            new TransactWriteItemsCommand({
              TransactItems: this.#writes(
                pk,
                expected,
                last,
                chunk.map((c) => c.entry),
              ),
            }),
          );
          expected = last;
        }
        return result;
      } catch (err) {
        // Another writer moved the head or added one of these messages: read again and retry.
        const codes = cancellationCodes(err);
        if (!codes || attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 10 * 2 ** attempt)));
      }
    }
  }

  #writes(pk: string, expected: bigint, last: bigint, entries: InboxEntry[]): TransactWriteItem[] {
    const nowMs = Date.now();
    const expires = expiresIn(this.#retentionSeconds / 86_400, nowMs);
    return [
      {
        Put: {
          TableName: this.#table,
          Item: { pk: s(pk), sk: s(keys.inboxHead()), seq: n(last) },
          ConditionExpression: expected === 0n ? "attribute_not_exists(pk)" : "seq = :expected",
          ExpressionAttributeValues: expected === 0n ? undefined : { ":expected": n(expected) },
        },
      },
      ...entries.flatMap((entry): TransactWriteItem[] => {
        const m = entry.message as Message;
        return [
          {
            Put: {
              TableName: this.#table,
              Item: {
                pk: s(pk),
                sk: s(keys.inboxEntry(entry.seq)),
                e: b(toBinary(InboxEntrySchema, entry)),
                at: n(nowMs),
                [TTL_ATTRIBUTE]: expires,
              },
            },
          },
          {
            Put: {
              TableName: this.#table,
              Item: {
                pk: s(pk),
                sk: s(keys.inboxDedup(m.conversationId, m.originRegion, m.seq)),
                seq: n(entry.seq),
                [TTL_ATTRIBUTE]: expires,
              },
              ConditionExpression: "attribute_not_exists(pk)",
            },
          },
        ];
      }),
    ];
  }

  async #head(pk: string): Promise<bigint> {
    const res = await this.#db.send(
      new GetItemCommand({
        TableName: this.#table,
        Key: { pk: s(pk), sk: s(keys.inboxHead()) },
        ConsistentRead: true,
      }),
    );
    return res.Item ? big(res.Item, "seq") : 0n;
  }

  /**
   * lastKnown is the highest inbox seq known to exist in a partition: its head item, or a
   * replicated entry beyond it (items replicate in any order). Expired entries are gone, but
   * the head item still counts them.
   */
  async #lastKnown(pk: string, region: string): Promise<bigint> {
    const [head, last] = await Promise.all([
      this.#head(pk),
      this.#db.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: "pk = :pk AND begins_with(sk, :e)",
          ExpressionAttributeValues: { ":pk": s(pk), ":e": s("e#") },
          ScanIndexForward: false,
          Limit: 1,
          ConsistentRead: region === this.region,
        }),
      ),
    ]);
    const item = last.Items?.[0];
    const entry = item ? BigInt(str(item, "sk").slice(2)) : 0n;
    return entry > head ? entry : head;
  }

  /** existing maps the dedup keys of messages already in the inbox to their entries. */
  async #existing(pk: string, messages: Message[]): Promise<Map<string, InboxEntry>> {
    const out = new Map<string, InboxEntry>();
    const unique = [...new Map(messages.map((m) => [dedupKey(m), m])).values()];
    for (let i = 0; i < unique.length; i += 100) {
      const batch = unique.slice(i, i + 100);
      const res = await this.#db.send(
        new BatchGetItemCommand({
          RequestItems: {
            [this.#table]: {
              Keys: batch.map((m) => ({
                pk: s(pk),
                sk: s(keys.inboxDedup(m.conversationId, m.originRegion, m.seq)),
              })),
              ConsistentRead: true,
            },
          },
        }),
      );
      if (res.UnprocessedKeys && Object.keys(res.UnprocessedKeys).length > 0) {
        throw new Error("inbox dedup read was throttled; retry");
      }
      const dedups = res.Responses?.[this.#table] ?? [];
      if (dedups.length === 0) continue;
      const entries = await this.#db.send(
        new BatchGetItemCommand({
          RequestItems: {
            [this.#table]: {
              Keys: dedups.map((d) => ({ pk: s(pk), sk: s(keys.inboxEntry(big(d, "seq"))) })),
              ConsistentRead: true,
            },
          },
        }),
      );
      for (const item of entries.Responses?.[this.#table] ?? []) {
        const entry = fromBinary(InboxEntrySchema, bytes(item, "e"));
        if (entry.message) out.set(dedupKey(entry.message), entry);
      }
    }
    return out;
  }

  async read(userId: string, after: Vector, limit: number) {
    const entries: InboxEntry[] = [];
    const head: Vector = new Map();
    const expired: Vector = new Map();
    let more = false;
    const regions = new Set([...this.#regions, ...after.keys()]);
    const nowMs = Date.now();
    for (const region of regions) {
      const pk = keys.inbox(userId, region);
      const from = after.get(region) ?? 0n;
      let seq = from;
      let start: Item | undefined;
      let reachedLimit = false;
      // The entry at the position itself, read along, proves the position real; so does any
      // entry after it (seqs are dense where they are written).
      let real = from === 0n;
      const lowest = real ? 1n : from;
      // Read forward from the position; stop at the first hole (replication may deliver
      // later entries before earlier ones) or at the limit.
      scan: for (;;) {
        const res = await this.#db.send(
          new QueryCommand({
            TableName: this.#table,
            KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues: {
              ":pk": s(pk),
              ":from": s(keys.inboxEntry(lowest)),
              ":to": s("e#~"),
            },
            ExclusiveStartKey: start,
            // One more than the limit tells whether there is more; one more for the position.
            Limit: Math.max(1, Math.min(1000, limit - entries.length + (from > 0n ? 2 : 1))),
            ConsistentRead: region === this.region,
          }),
        );
        for (const item of res.Items ?? []) {
          const itemSeq = BigInt(str(item, "sk").slice(2));
          real = true;
          if (itemSeq === from) continue;
          const exp = item[TTL_ATTRIBUTE]?.N;
          if (exp !== undefined && Number(exp) * 1000 <= nowMs) {
            // Expired, not yet deleted by DynamoDB: skipped like the deleted ones before it.
            seq = itemSeq;
            expired.set(region, itemSeq);
            continue;
          }
          if (itemSeq !== seq + 1n) {
            if (!this.#expiredBefore(region, item, seq === from, nowMs)) break scan;
            expired.set(region, itemSeq - 1n);
          }
          if (entries.length >= limit) {
            reachedLimit = true;
            break scan;
          }
          entries.push(fromBinary(InboxEntrySchema, bytes(item, "e")));
          seq = itemSeq;
        }
        start = res.LastEvaluatedKey;
        if (!start) break;
      }
      if (!real) {
        // Nothing at or after the position: it expired, or it is beyond the inbox. Beyond it,
        // the head says where the inbox really ends.
        const last = await this.#lastKnown(pk, region);
        if (from > last) {
          if (last > 0n) head.set(region, last);
          continue;
        }
      }
      // Cut short by the limit, this region's head is its head item (its inbox is written
      // here, densely); another region's is only known up to what was read.
      let reachedHead = seq;
      if (reachedLimit) {
        more = true;
        if (region === this.region) reachedHead = await this.#head(pk);
      }
      if (reachedHead > 0n) head.set(region, reachedHead);
    }
    return { entries, head, more, expired };
  }

  /**
   * expiredBefore decides whether a hole before `item` is entries DynamoDB's TTL already
   * deleted, rather than entries replication has yet to bring. In this region's own inbox
   * nothing is replicated, so a hole at the start of the range can only be deleted entries.
   * In another region's, a hole at the start counts as expired when the entry after it is
   * itself past half the retention: entries expire oldest first, and replication lags by
   * seconds, not days.
   */
  #expiredBefore(region: string, item: Item, atStart: boolean, nowMs: number): boolean {
    if (!atStart) return false;
    if (region === this.region) return true;
    const at = item.at?.N;
    return at !== undefined && nowMs - Number(at) > (this.#retentionSeconds * 1000) / 2;
  }
}

function dedupKey(m: Message): string {
  return `${m.conversationId}\u0000${m.originRegion}\u0000${pad20(m.seq)}`;
}
