import { PutItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import test from "ava";
import { type DynamoLocal, startDynamoLocal } from "../../dev/backends/dynamodb.ts";
import { requireProgram } from "../../dev/backends/processes.ts";
import {
  REPLICATED_FROM,
  replicateDynamoTable,
} from "../../dev/replication/dynamo-table-replicator.ts";
import { replicateMemoryTables } from "../../dev/replication/memory-table-replicator.ts";
import { DynamoChatStore } from "../../services/shared/adapters/dynamodb/dynamo-chat-store.ts";
import { DynamoInboxStore } from "../../services/shared/adapters/dynamodb/dynamo-inbox-store.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import type { ItemChange, Replica } from "../../services/shared/adapters/memory/replica.ts";
import { keys } from "../../services/shared/item-keys.ts";
import { replicationContract } from "./replication.suite.ts";

const A = "us-east-1";
const B = "eu-west-1";

/** normalize turns an item into a comparable line (bigints, maps and bytes spelled out). */
function normalize(key: string, value: unknown): string {
  return `${key} ${JSON.stringify(value, (_k, v) => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Map) return Object.fromEntries([...v].sort());
    if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
    return v;
  })}`;
}

/**
 * FeedOnly is a store reduced to its change feed, for making region a report what a store with
 * a bug in its keys would: an item whose key names region b.
 */
class FeedOnly implements Replica {
  readonly region: string;
  readonly #listeners = new Set<(c: ItemChange) => void>();
  constructor(region: string) {
    this.region = region;
  }
  onChange(listener: (c: ItemChange) => void) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  emit(change: ItemChange) {
    for (const l of this.#listeners) l(change);
  }
  applyReplicated() {}
  items() {
    return [];
  }
}

replicationContract("memory stores", async (options) => {
  const a = { chat: new MemoryChatStore(A), inbox: new MemoryInboxStore(A) };
  const b = { chat: new MemoryChatStore(B), inbox: new MemoryInboxStore(B) };
  const broken = new FeedOnly(A);
  const ab = replicateMemoryTables({
    from: A,
    to: B,
    pairs: [
      [a.chat, b.chat],
      [a.inbox, b.inbox],
      [broken, new FeedOnly(B)],
    ],
    options,
  });
  const ba = replicateMemoryTables({
    from: B,
    to: A,
    pairs: [
      [b.chat, a.chat],
      [b.inbox, a.inbox],
    ],
    options,
  });
  const items = (r: typeof a) =>
    [...r.chat.items(), ...r.inbox.items()]
      .map((i: ItemChange) => normalize(`${i.pk} ${i.sk}`, i.value))
      .sort();
  return {
    a: { region: A, ...a },
    b: { region: B, ...b },
    ab,
    ba,
    items: async (r) => items(r === "a" ? a : b),
    async writeForeign() {
      broken.emit({ pk: keys.user("mallory"), sk: keys.pushToken("d", B), value: {} });
    },
    async dispose() {
      await Promise.all([ab.close(), ba.close()]);
    },
  };
});

const java = requireProgram("java", "install a Java 17 runtime for DynamoDB Local");
let local: DynamoLocal | undefined;
if (java.available) {
  test.before(async () => {
    local = await startDynamoLocal();
  });
  test.after.always(async () => {
    await local?.stop();
  });
  let tables = 0;
  replicationContract("DynamoDB Local tables", async (options) => {
    if (!local) throw new Error("DynamoDB Local is not running");
    const dynamo = local;
    const n = ++tables;
    const [ta, tb] = [`chat-${n}-a`, `chat-${n}-b`];
    await Promise.all([dynamo.createTable(ta), dynamo.createTable(tb)]);
    const db = dynamo.client();
    const region = (r: string, table: string) => ({
      region: r,
      chat: new DynamoChatStore(db, table, r, { peers: [A, B] }),
      inbox: new DynamoInboxStore(db, table, r, { peers: [A, B] }),
    });
    const end = (r: string, table: string) => ({ region: r, endpoint: dynamo.endpoint, table });
    const [ab, ba] = await Promise.all([
      replicateDynamoTable({ from: end(A, ta), to: end(B, tb), options }),
      replicateDynamoTable({ from: end(B, tb), to: end(A, ta), options }),
    ]);
    const items = async (table: string) => {
      const lines: string[] = [];
      let start: Record<string, never> | undefined;
      do {
        const res = await db.send(
          new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }),
        );
        for (const item of res.Items ?? []) {
          const { [REPLICATED_FROM]: _, ...rest } = item;
          lines.push(
            normalize(
              `${item.pk?.S} ${item.sk?.S}`,
              Object.fromEntries(Object.entries(rest).sort(([x], [y]) => (x < y ? -1 : 1))),
            ),
          );
        }
        start = res.LastEvaluatedKey as typeof start;
      } while (start);
      return lines.sort();
    };
    return {
      a: region(A, ta),
      b: region(B, tb),
      ab,
      ba,
      items: (r) => items(r === "a" ? ta : tb),
      async writeForeign() {
        // A service with a bug in its keys writes region B's item into region A's table.
        await db.send(
          new PutItemCommand({
            TableName: ta,
            Item: {
              pk: { S: keys.user("mallory") },
              sk: { S: keys.pushToken("d", B) },
              token: { S: "x" },
            },
          }),
        );
      },
      async dispose() {
        await Promise.all([ab.close(), ba.close()]);
        db.destroy();
      },
    };
  });
} else {
  test.skip(`DynamoDB Local tables: ${java.why}`, () => {});
}
