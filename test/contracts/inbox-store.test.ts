import { PutItemCommand } from "@aws-sdk/client-dynamodb";
import { toBinary } from "@bufbuild/protobuf";
import test from "ava";
import { type DynamoLocal, startDynamoLocal } from "../../dev/backends/dynamodb.ts";
import { requireProgram } from "../../dev/backends/processes.ts";
import { type InboxEntry, InboxEntrySchema } from "../../gen/chat/v1/types_pb.ts";
import { DynamoInboxStore } from "../../services/shared/adapters/dynamodb/dynamo-inbox-store.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { keys } from "../../services/shared/item-keys.ts";
import { inboxStoreContract } from "./inbox-store.suite.ts";

/** memoryInbox makes a MemoryInboxStore, its retention as asked or `window`'s. */
function memoryInbox(
  region: string,
  opts: { retentionSeconds?: number },
  window: { retentionMs?: number; maxEntries?: number } = {},
) {
  const store = new MemoryInboxStore(region, {
    ...window,
    ...(opts.retentionSeconds === undefined ? {} : { retentionMs: opts.retentionSeconds * 1000 }),
  });
  return {
    store,
    replicate: async (userId: string, entry: InboxEntry) =>
      store.applyReplicated({
        pk: keys.inbox(userId, entry.region),
        sk: keys.inboxEntry(entry.seq),
        value: { entry, atMs: Date.now() },
      }),
  };
}

inboxStoreContract("MemoryInboxStore", async (region, opts) => memoryInbox(region, opts));
// The same contract within the window `npm start` keeps (newest entries of each inbox, by count
// and age): nothing a test writes within it may be lost.
inboxStoreContract("MemoryInboxStore (windowed)", async (region, opts) =>
  memoryInbox(region, opts, { retentionMs: 600_000, maxEntries: 16 }),
);

const java = requireProgram("java", "install a Java 17 runtime for DynamoDB Local");
let local: DynamoLocal | undefined;
if (java.available) {
  test.before(async () => {
    local = await startDynamoLocal();
    await local.createTable("chat");
  });
  test.after.always(async () => {
    await local?.stop();
  });
  inboxStoreContract("DynamoInboxStore", async (region, opts) => {
    const db = local?.client();
    if (!db) throw new Error("DynamoDB Local is not running");
    return {
      store: new DynamoInboxStore(db, "chat", region, opts),
      // What Global Table replication does: the other region's items appear here as written.
      replicate: (userId, entry) =>
        db
          .send(
            new PutItemCommand({
              TableName: "chat",
              Item: {
                pk: { S: keys.inbox(userId, entry.region) },
                sk: { S: keys.inboxEntry(entry.seq) },
                e: { B: toBinary(InboxEntrySchema, entry) },
                at: { N: String(Date.now()) },
              },
            }),
          )
          .then(() => undefined),
      dispose: async () => db.destroy(),
    };
  });
} else {
  test.skip(`DynamoInboxStore: ${java.why}`, () => {});
}
