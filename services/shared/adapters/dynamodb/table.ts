import type { CreateTableCommandInput } from "@aws-sdk/client-dynamodb";

/**
 * The chat table: one DynamoDB (Global) Table for conversations, messages, inboxes, receipts
 * and push tokens, with the item layout of `../../item-keys.ts`. The deployment's
 * CloudFormation (copilot/environments/addons) declares the same keys, index, TTL attribute and
 * stream; a test keeps the two identical.
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
