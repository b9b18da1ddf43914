import test from "ava";
import { type DynamoLocal, startDynamoLocal } from "../../dev/backends/dynamodb.ts";
import { requireProgram } from "../../dev/backends/processes.ts";
import { DynamoChatStore } from "../../services/shared/adapters/dynamodb/dynamo-chat-store.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { chatStoreContract } from "./chat-store.suite.ts";

chatStoreContract("MemoryChatStore", async (region, opts) => ({
  store: new MemoryChatStore(region, {
    sendDedupMs: opts.sendDedupSeconds === undefined ? undefined : opts.sendDedupSeconds * 1000,
  }),
}));

// The same contract within the window `npm start` keeps (newest messages of each conversation,
// by count and age): nothing a test writes within it may be lost.
chatStoreContract("MemoryChatStore (windowed)", async (region, opts) => ({
  store: new MemoryChatStore(region, {
    historyMessages: 64,
    historyRetentionMs: 600_000,
    sendDedupMs: opts.sendDedupSeconds === undefined ? undefined : opts.sendDedupSeconds * 1000,
  }),
}));

const java = requireProgram("java", "install a Java 17 runtime for DynamoDB Local");
let local: DynamoLocal | undefined;
if (java.available) {
  test.before(async () => {
    local = await startDynamoLocal({ persistent: true });
    await local.createTable("chat");
  });
  test.after.always(async () => {
    await local?.stop();
  });
  chatStoreContract(
    "DynamoChatStore",
    async (region, opts) => {
      const db = local?.client();
      if (!db) throw new Error("DynamoDB Local is not running");
      return {
        store: new DynamoChatStore(db, "chat", region, opts),
        dispose: async () => db.destroy(),
      };
    },
    { restartBackend: () => local?.restart() ?? Promise.resolve() },
  );
} else {
  test.skip(`DynamoChatStore: ${java.why}`, () => {});
}
