import { create } from "@bufbuild/protobuf";
import test from "ava";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { type Message, MessageSchema } from "../../gen/chat/v1/types_pb.ts";
import { build } from "../../services/persistence/server.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { openStores } from "../../services/shared/backends.ts";
import { ConfigError, loadPersistenceConfig } from "../../services/shared/config.ts";
import { createHybridClock } from "../../services/shared/hlc.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { orderKeyOf } from "../../services/shared/ports/chat-store.ts";
import { inMemoryClient, TEST_PEERS } from "../support/in-memory.ts";

/**
 * The embedded stores keep a window, not the whole history: what they hold is counted through
 * their items (what a convergence check lists), never through process memory, and the work of
 * the routing outbox scan through the store's own count of what it looked at.
 */

const REGION = "us-east-1";

function message(conversationId: string, seq: bigint, over: Partial<Message> = {}): Message {
  return create(MessageSchema, {
    conversationId,
    originRegion: REGION,
    seq,
    hlc: seq,
    senderId: "alice",
    senderDeviceId: "phone",
    clientMsgId: `m${seq}`,
    content: { case: "text", value: `text ${seq}` },
    ...over,
  });
}

/**
 * fill appends `perConversation` messages to each of `conversations` conversations (named
 * `<prefix>0`, `<prefix>1`, …), advancing the routing cursor every `routeEvery` messages as
 * routing would (0: never).
 */
async function fill(
  store: MemoryChatStore,
  o: { prefix: string; conversations: number; perConversation: number; routeEvery: number },
  atMs = () => Date.now(),
) {
  for (let c = 0; c < o.conversations; c++) {
    const conversationId = `${o.prefix}${c}`;
    const start = (await store.head(conversationId)).seq;
    for (let i = 1; i <= o.perConversation; i++) {
      const seq = start + BigInt(i);
      await store.append({
        message: message(conversationId, seq),
        expectedSeq: seq - 1n,
        appendedAtMs: atMs(),
      });
      if (o.routeEvery > 0 && i % o.routeEvery === 0) {
        await store.advanceRoutedSeq(conversationId, seq);
      }
    }
  }
}

/** held counts a store's items whose sort key starts with `prefix` (e.g. "msg#", "e#"). */
function held(store: { items(): Array<{ sk: string }> }, prefix: string): number {
  let n = 0;
  for (const item of store.items()) if (item.sk.startsWith(prefix)) n++;
  return n;
}

test("the chat store keeps the last messages of each conversation; history ends there", async (t) => {
  const store = new MemoryChatStore(REGION, { historyMessages: 100 });
  // 200 conversations of 1,000 messages: 200,000 messages, routed as they go.
  await fill(store, { prefix: "c", conversations: 200, perConversation: 1000, routeEvery: 10 });
  t.is(held(store, "msg#"), 200 * 100, "messages held");
  t.is(held(store, "send#"), 200 * 100, "dedup items held");

  const page = await store.history("c7", undefined, 1000);
  t.deepEqual(
    page.map((m) => m.seq),
    Array.from({ length: 100 }, (_, i) => 1000n - BigInt(i)),
    "the newest 100, newest first",
  );
  const older = await store.history("c7", orderKeyOf(page.at(-1) as Message), 10);
  t.deepEqual(older, [], "nothing before the window: the history ends there");
  t.is((await store.messagesAfter("c7", REGION, 0n, 1000)).length, 100, "the log holds the window");
  t.is((await store.findSend("c7", "alice", "m950"))?.seq, 950n, "dedup within the window");
  t.is(await store.findSend("c7", "alice", "m10"), undefined, "beyond it, the id is free again");
  t.deepEqual(await store.head("c7"), { seq: 1000n, hlc: 1000n }, "the head stays");
});

test("through persistence, history ends at the window: has_more is false there", async (t) => {
  const store = new MemoryChatStore(REGION, { historyMessages: 5 });
  const p = inMemoryClient(
    build({
      peers: TEST_PEERS,
      store,
      inbox: new MemoryInboxStore(REGION),
      clock: createHybridClock(),
      log: silentLogger,
      metrics: createMetrics("persistence", { processMetrics: false }),
    }),
    PersistenceService,
    "messaging",
  );
  const send = (clientMsgId: string) =>
    p.appendMessage({
      conversationId: "c",
      senderId: "alice",
      senderDeviceId: "phone",
      clientMsgId,
      content: { case: "text", value: clientMsgId },
    });
  for (let i = 1; i <= 12; i++) await send(`s${i}`);
  await p.writeRoutedSeq({ conversationId: "c", seq: 12n });
  const { history } = await p.readHistory({ query: { conversationId: "c", limit: 10 } });
  t.deepEqual(
    history?.messages.map((m) => m.seq),
    [8n, 9n, 10n, 11n, 12n],
  );
  t.false(history?.hasMore, "nothing older is left to page to");
  const oldest = history?.messages[0] as Message;
  const before = await p.readHistory({
    query: {
      conversationId: "c",
      limit: 10,
      before: { hlc: oldest.hlc, originRegion: oldest.originRegion, seq: oldest.seq },
    },
  });
  t.deepEqual([before.history?.messages, before.history?.hasMore], [[], false]);
  const held = await send("s12");
  t.deepEqual([held.duplicate, held.message?.seq], [true, 12n], "a retry within the window");
  const gone = await send("s1");
  t.deepEqual([gone.duplicate, gone.message?.seq], [false, 13n], "beyond it: a new message");
});

test("the chat store keeps every unrouted message, whatever the window", async (t) => {
  const store = new MemoryChatStore(REGION, { historyMessages: 10 });
  await fill(store, { prefix: "u", conversations: 1, perConversation: 500, routeEvery: 0 });
  t.is(held(store, "msg#"), 500, "routing may still need every one of them");
  t.is((await store.unrouted(0, Date.now() + 1, 1000)).length, 500);
  t.is((await store.messagesAfter("u0", REGION, 0n, 1000)).length, 500);
  await store.advanceRoutedSeq("u0", 250n);
  t.is(held(store, "msg#"), 250, "the routed ones beyond the window go");
  await store.advanceRoutedSeq("u0", 500n);
  t.is(held(store, "msg#"), 10);
  t.deepEqual(
    (await store.history("u0", undefined, 100)).map((m) => m.seq),
    Array.from({ length: 10 }, (_, i) => 500n - BigInt(i)),
  );
});

test("the chat store forgets messages past the age window, of idle conversations too", async (t) => {
  let now = 1_000_000;
  const store = new MemoryChatStore(REGION, { historyRetentionMs: 60_000, now: () => now });
  await fill(
    store,
    { prefix: "idle", conversations: 1000, perConversation: 3, routeEvery: 3 },
    () => now,
  );
  t.is(held(store, "msg#"), 3000);
  now += 30_000;
  await fill(store, { prefix: "young", conversations: 1, perConversation: 1, routeEvery: 1 });
  t.is(held(store, "msg#"), 3001, "nothing is older than the window yet");
  now += 32_000;
  // Any later write lets the store drop what aged out, without a scan of everything it holds.
  await fill(store, { prefix: "late", conversations: 1, perConversation: 1, routeEvery: 1 });
  t.is(held(store, "msg#"), 2, "only the two younger than a minute are left");
  t.deepEqual(await store.history("idle5", undefined, 10), []);
  t.is(await store.findSend("idle5", "alice", "m1"), undefined);
  t.deepEqual((await store.head("idle5")).seq, 3n, "the conversation itself stays");
});

test("unrouted() looks only at unrouted messages, however many were routed", async (t) => {
  const store = new MemoryChatStore(REGION);
  // 1,000 conversations of 200 messages, every one routed: 200,000 messages of routed history.
  await fill(store, { prefix: "r", conversations: 1000, perConversation: 200, routeEvery: 200 });
  t.deepEqual(await store.unrouted(0, Date.now() + 1, 1000), []);
  t.is(store.stats().unroutedScanned, 0, "an empty scan looks at nothing");

  // Ten sends whose publisher died, in five conversations.
  await fill(store, { prefix: "r", conversations: 5, perConversation: 2, routeEvery: 0 });
  const found = await store.unrouted(0, Date.now() + 1, 1000);
  t.deepEqual(
    found.map((m) => `${m.conversationId}:${m.seq}`).sort(),
    ["r0:201", "r0:202", "r1:201", "r1:202", "r2:201", "r2:202"]
      .concat(["r3:201", "r3:202", "r4:201", "r4:202"])
      .sort(),
  );
  t.true(
    store.stats().unroutedScanned <= 10,
    `looked at ${store.stats().unroutedScanned} outbox items for 10 unrouted messages`,
  );
  for (let c = 0; c < 5; c++) await store.advanceRoutedSeq(`r${c}`, 202n);
  t.deepEqual(await store.unrouted(0, Date.now() + 1, 1000), []);
  t.is(store.stats().unroutedScanned, 0);
});

test("the inbox keeps the last entries of each user and says what it dropped", async (t) => {
  const store = new MemoryInboxStore(REGION, { maxEntries: 100 });
  // 100 users with 2,000 entries each: 200,000 entries.
  for (let u = 0; u < 100; u++) {
    for (let batch = 0; batch < 20; batch++) {
      await store.append(
        Array.from({ length: 100 }, (_, i) => ({
          userId: `user${u}`,
          message: message("c", BigInt(batch * 100 + i + 1)),
        })),
      );
    }
  }
  t.is(held(store, "e#"), 100 * 100, "entries held");
  t.is(held(store, "x#"), 100 * 100, "dedup items held");
  const read = await store.read("user3", new Map(), 1000);
  t.deepEqual(
    read.entries.map((e) => e.seq),
    Array.from({ length: 100 }, (_, i) => 1901n + BigInt(i)),
  );
  t.deepEqual(read.expired, new Map([[REGION, 1900n]]), "the read says what is gone");
  t.deepEqual(read.head, new Map([[REGION, 2000n]]));
  const caughtUp = await store.read("user3", new Map([[REGION, 1950n]]), 1000);
  t.is(caughtUp.entries.length, 50);
  t.is(caughtUp.expired.size, 0, "nothing after this position is gone");
  const again = await store.append([{ userId: "user3", message: message("c", 2000n) }]);
  t.is(again[0]?.seq, 2000n, "appends stay idempotent within the window");
});

test("inbox entries past the retention are dropped, of idle users too", async (t) => {
  let now = 1_000_000;
  const store = new MemoryInboxStore(REGION, { retentionMs: 60_000, now: () => now });
  for (let u = 0; u < 1000; u++) {
    await store.append(
      [1n, 2n, 3n, 4n, 5n].map((seq) => ({ userId: `idle${u}`, message: message("c", seq) })),
    );
  }
  t.is(held(store, "e#"), 5000);
  now += 62_000;
  await store.append([{ userId: "late", message: message("c", 1n) }]);
  t.is(held(store, "e#"), 1, "only the young entry is left");
  t.is(held(store, "x#"), 1);
  const read = await store.read("idle7", new Map(), 100);
  t.deepEqual(
    [read.entries, read.expired, read.head],
    [[], new Map([[REGION, 5n]]), new Map([[REGION, 5n]])],
    "an idle user's device is told its entries expired",
  );
});

test("the window is configured by environment variables, checked at start", (t) => {
  const config = loadPersistenceConfig({
    MEMORY_HISTORY_MESSAGES: "50",
    MEMORY_HISTORY_MINUTES: "10",
    MEMORY_INBOX_ENTRIES: "20",
    MEMORY_INBOX_MINUTES: "5",
  });
  t.deepEqual(config.backends.store, {
    kind: "memory",
    historyMessages: 50,
    historyRetentionMs: 600_000,
    inboxEntries: 20,
    inboxRetentionMs: 300_000,
  });
  const defaults = loadPersistenceConfig({});
  t.like(defaults.backends.store, { kind: "memory", historyMessages: 1000, inboxEntries: 1000 });
  const err = t.throws(
    () => loadPersistenceConfig({ MEMORY_HISTORY_MESSAGES: "-1", MEMORY_INBOX_MINUTES: "soon" }),
    { instanceOf: ConfigError },
  );
  t.regex(err.message, /MEMORY_HISTORY_MESSAGES: .*\(got "-1"\)/);
  t.regex(err.message, /MEMORY_INBOX_MINUTES: .*\(got "soon"\)/);
  const unlimited = loadPersistenceConfig({ MEMORY_HISTORY_MESSAGES: "0" });
  t.like(unlimited.backends.store, { historyMessages: Number.POSITIVE_INFINITY });

  const { store } = openStores(config.backends.store, REGION, []);
  t.true(store instanceof MemoryChatStore);
  t.like((store as MemoryChatStore).stats(), { messages: 0 });
});
