import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";

/**
 * The chat table: one DynamoDB (Global) Table for conversations, messages, inboxes, receipts
 * and push tokens. The deployment's CloudFormation (copilot/environments/addons) declares the
 * same keys, index, TTL attribute and stream; a test keeps the two identical.
 *
 * Keys are strings, `pk` and `sk`; every id is [A-Za-z0-9_-] and every region [a-z0-9-], so
 * `#` separates key parts and `~` sorts after all of them. Numbers that can exceed 2^53 (seqs,
 * hlcs) are zero-padded to 20 digits in keys and stored as DynamoDB numbers elsewhere.
 *
 * | pk                         | sk                                  | item                                   |
 * |----------------------------|-------------------------------------|----------------------------------------|
 * | c#<conversation>           | meta#<region>                       | kind, title, createdBy                 |
 * | c#<conversation>           | mbr#<user>#<region>                 | member, hlc (merged on read)           |
 * | c#<conversation>           | head#<region>                       | seq, hlc: the region's log head        |
 * | c#<conversation>           | msg#<region>#<seq>                  | m: the Message (protobuf); by-order GSI|
 * | c#<conversation>           | send#<region>#<sender>#<client id>  | seq: dedup of sends (expires)          |
 * | c#<conversation>           | routed#<region>                     | seq: routing cursor                    |
 * | c#<conversation>           | rcpt#<user>#<kind>#<region>         | up: map region → seq (merged on read)  |
 * | u#<user>                   | conv#<conversation>#<region>        | member, hlc, kind, title, createdBy    |
 * | u#<user>                   | push#<device>#<region>              | platform, token, at                    |
 * | i#<user>#<region>          | head                                | seq: the user's inbox head here        |
 * | i#<user>#<region>          | e#<seq>                             | e: the InboxEntry (protobuf) (expires) |
 * | i#<user>#<region>          | x#<conversation>#<origin>#<seq>     | seq: inbox dedup per message (expires) |
 * | o#<region>#<bucket>#<shard>| <ms>#<conversation>#<seq>           | routing outbox (expires)               |
 *
 * GSI `by-order` (gsi1pk = c#<conversation>, gsi1sk = <hlc>#<region>#<seq>) holds only
 * messages and serves history in display order.
 */

/** GSI_BY_ORDER is the index of messages in display order. */
export const GSI_BY_ORDER = "by-order";

/** TTL_ATTRIBUTE holds an item's expiry (Unix seconds). */
export const TTL_ATTRIBUTE = "expires";

/** chatTableDefinition is the CreateTable input of the chat table named `name`. */
export function chatTableDefinition(name: string): CreateTableCommandInput {
  return {
    TableName: name,
    BillingMode: "PAY_PER_REQUEST",
    AttributeDefinitions: [
      { AttributeName: "pk", AttributeType: "S" },
      { AttributeName: "sk", AttributeType: "S" },
      { AttributeName: "gsi1pk", AttributeType: "S" },
      { AttributeName: "gsi1sk", AttributeType: "S" },
    ],
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: GSI_BY_ORDER,
        KeySchema: [
          { AttributeName: "gsi1pk", KeyType: "HASH" },
          { AttributeName: "gsi1sk", KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      },
    ],
    // Global Tables replicate through the stream; the local table replicator reads it too.
    StreamSpecification: { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" },
  };
}

/** pad20 writes a non-negative integer as 20 digits, so string order is numeric order. */
export function pad20(n: bigint): string {
  return n.toString().padStart(20, "0");
}

/** keys builds every key of the table (see the layout above). */
export const keys = {
  conversation: (c: string) => `c#${c}`,
  meta: (region: string) => `meta#${region}`,
  member: (user: string, region: string) => `mbr#${user}#${region}`,
  head: (region: string) => `head#${region}`,
  message: (region: string, seq: bigint) => `msg#${region}#${pad20(seq)}`,
  send: (region: string, sender: string, clientMsgId: string) =>
    `send#${region}#${sender}#${clientMsgId}`,
  routed: (region: string) => `routed#${region}`,
  receipt: (user: string, kind: string, region: string) => `rcpt#${user}#${kind}#${region}`,
  user: (u: string) => `u#${u}`,
  membership: (c: string, region: string) => `conv#${c}#${region}`,
  pushToken: (device: string, region: string) => `push#${device}#${region}`,
  inbox: (user: string, region: string) => `i#${user}#${region}`,
  inboxEntry: (seq: bigint) => `e#${pad20(seq)}`,
  inboxDedup: (c: string, origin: string, seq: bigint) => `x#${c}#${origin}#${pad20(seq)}`,
  outbox: (region: string, bucket: number, shard: number) => `o#${region}#${bucket}#${shard}`,
  order: (hlc: bigint, region: string, seq: bigint) => `${pad20(hlc)}#${region}#${pad20(seq)}`,
};
