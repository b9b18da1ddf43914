import { Code, ConnectError } from "@connectrpc/connect";
import test from "ava";
import { replicateMemoryTables } from "../../dev/replication/memory-table-replicator.ts";
import { ViolationsSchema } from "../../gen/buf/validate/validate_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { ConversationKind, MembershipAction, ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { build } from "../../services/persistence/server.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { createHybridClock, hlcFromMillis } from "../../services/shared/hlc.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { inMemoryClient, TEST_PEERS } from "../support/in-memory.ts";

function persistence(wallMs = () => Date.now(), store = new MemoryChatStore("us-east-1")) {
  const app = build({
    peers: TEST_PEERS,
    store,
    inbox: new MemoryInboxStore(store.region),
    clock: createHybridClock(wallMs),
    log: silentLogger,
    metrics: createMetrics("persistence", { processMetrics: false }),
  });
  return inMemoryClient(app, PersistenceService, "messaging");
}

const text = (conversationId: string, clientMsgId: string, value = clientMsgId, seenHlc = 0n) => ({
  conversationId,
  senderId: "alice",
  senderDeviceId: "phone",
  clientMsgId,
  seenHlc,
  content: { case: "text" as const, value },
});

test("AppendMessage stamps dense seqs and increasing hlcs in this region", async (t) => {
  const p = persistence();
  const a = await p.appendMessage(text("c", "1"));
  const b = await p.appendMessage(text("c", "2"));
  t.deepEqual([a.message?.seq, b.message?.seq], [1n, 2n]);
  t.is(a.message?.originRegion, "us-east-1");
  t.true((b.message?.hlc ?? 0n) > (a.message?.hlc ?? 0n));
  const again = await p.appendMessage(text("c", "1", "changed"));
  t.true(again.duplicate);
  t.deepEqual(again.message, a.message);
});

test("AppendMessage sorts a message after the hlc its sender had seen", async (t) => {
  const p = persistence(() => 1_000_000);
  const ahead = hlcFromMillis(1_000_030) + 5n;
  const m = await p.appendMessage(text("c", "1", "x", ahead));
  t.true((m.message?.hlc ?? 0n) > ahead);
  const err = await p
    .appendMessage(text("c", "2", "x", hlcFromMillis(1_000_000 + 3_600_000)))
    .catch((e) => e);
  t.true(err instanceof ConnectError);
  t.is((err as ConnectError).code, Code.InvalidArgument);
  t.regex((err as ConnectError).rawMessage, /seen_hlc: .* ms ahead of this region's clock/);
});

test("concurrent appends to one conversation are serialized without loss", async (t) => {
  const p = persistence();
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => p.appendMessage(text("busy", `m${i}`))),
  );
  t.deepEqual(
    results.map((r) => r.message?.seq).sort((x, y) => Number((x ?? 0n) - (y ?? 0n))),
    Array.from({ length: 50 }, (_, i) => BigInt(i + 1)),
  );
});

test("InsertConversation creates direct conversations idempotently and groups with a first message", async (t) => {
  const p = persistence();
  const d1 = await p.insertConversation({
    conversationId: "d_1",
    kind: ConversationKind.DIRECT,
    createdBy: "alice",
    memberIds: ["alice", "bob"],
  });
  const d2 = await p.insertConversation({
    conversationId: "d_1",
    kind: ConversationKind.DIRECT,
    createdBy: "bob",
    memberIds: ["alice", "bob"],
  });
  t.deepEqual(d1.conversation, d2.conversation);
  t.is(d1.message, undefined);

  const g = await p.insertConversation({
    conversationId: "g_1",
    kind: ConversationKind.GROUP,
    title: "club",
    createdBy: "alice",
    memberIds: ["alice", "bob", "carol"],
    clientMsgId: "create",
  });
  t.is(g.message?.seq, 1n);
  t.is(g.message?.content.case, "membership");
  const retry = await p.insertConversation({
    conversationId: "g_1",
    kind: ConversationKind.GROUP,
    title: "club",
    createdBy: "alice",
    memberIds: ["alice", "bob", "carol"],
    clientMsgId: "create",
  });
  t.true(retry.duplicate);
  t.is(retry.message?.seq, 1n);
  t.deepEqual(retry.conversation?.memberIds, ["alice", "bob", "carol"]);

  const left = await p.appendMessage({
    ...text("g_1", "leave"),
    senderId: "bob",
    content: { case: "membership", value: { action: MembershipAction.LEFT, userIds: ["bob"] } },
  });
  t.is(left.message?.seq, 2n);
  t.deepEqual((await p.readConversation({ conversationId: "g_1" })).conversation?.memberIds, [
    "alice",
    "carol",
  ]);
  const err = await p.readConversation({ conversationId: "nope" }).catch((e) => e);
  t.is((err as ConnectError).code, Code.NotFound);
});

test("bad requests are refused by the contract's rules before reaching the store", async (t) => {
  const p = persistence();
  const err = await p
    .insertConversation({
      conversationId: "bad id",
      kind: 7 as ConversationKind,
      createdBy: "a",
      memberIds: ["a"],
    })
    .catch((e) => e);
  t.is((err as ConnectError).code, Code.InvalidArgument);
  t.regex(
    (err as ConnectError).rawMessage,
    /conversation_id: does not match regex pattern.*and 2 more/,
  );
  const [violations] = (err as ConnectError).findDetails(ViolationsSchema);
  t.deepEqual(
    violations?.violations.map((v) => v.field?.elements.map((e) => e.fieldName).join(".")),
    ["conversation_id", "kind", "member_ids"],
    "every violation is in the error details",
  );
});

test("inbox appends are dense and idempotent; reads resume from a vector", async (t) => {
  const p = persistence();
  const m1 = (await p.appendMessage(text("c", "1"))).message;
  const m2 = (await p.appendMessage(text("c", "2"))).message;
  const res = await p.appendInbox({
    items: [
      { userId: "bob", message: m1 },
      { userId: "bob", message: m2 },
      { userId: "bob", message: m1 },
    ],
  });
  t.deepEqual(
    res.entries.map((e) => e.seq),
    [1n, 2n, 1n],
  );
  const read = await p.readInbox({ userId: "bob", after: { seqs: { "us-east-1": 1n } } });
  t.deepEqual(
    read.entries.map((e) => e.message?.clientMsgId),
    ["2"],
  );
  t.deepEqual(read.head?.seqs, { "us-east-1": 2n });
});

test("receipts advance and merge; a stale receipt does not move them back", async (t) => {
  const p = persistence();
  const w = (seq: bigint) =>
    p.writeReceipt({
      receipt: {
        conversationId: "c",
        userId: "bob",
        kind: ReceiptKind.READ,
        upTo: { seqs: { "us-east-1": seq } },
      },
    });
  t.true((await w(5n)).advanced);
  const stale = await w(3n);
  t.false(stale.advanced);
  t.is(stale.receipt?.upTo?.seqs["us-east-1"], 5n);
  const unspecified = await p
    .writeReceipt({
      receipt: { conversationId: "c", userId: "bob", kind: ReceiptKind.UNSPECIFIED },
    })
    .catch((e) => e);
  t.is((unspecified as ConnectError).code, Code.InvalidArgument);
});

test("a receipt's advance names the senders of the messages it newly covers", async (t) => {
  const p = persistence();
  const from = (senderId: string, clientMsgId: string) =>
    p.appendMessage({ ...text("g", clientMsgId), senderId });
  for (const [i, sender] of ["alice", "carol", "alice", "dave", "erin"].entries()) {
    await from(sender, String(i + 1));
  }
  const w = (kind: ReceiptKind, seq: bigint) =>
    p.writeReceipt({
      receipt: { conversationId: "g", userId: "bob", kind, upTo: { seqs: { "us-east-1": seq } } },
    });
  const first = await w(ReceiptKind.DELIVERED, 3n);
  t.deepEqual([first.coveredSenderIds, first.coversMany], [["alice", "carol"], false]);
  const next = await w(ReceiptKind.DELIVERED, 4n);
  t.deepEqual(next.coveredSenderIds, ["dave"], "only what the advance covers, not before it");
  const stale = await w(ReceiptKind.DELIVERED, 2n);
  t.deepEqual([stale.advanced, stale.coveredSenderIds], [false, []]);
  const read = await w(ReceiptKind.READ, 5n);
  t.deepEqual(read.coveredSenderIds, ["alice", "carol", "dave", "erin"], "each kind on its own");

  for (let i = 6; i <= 107; i++) await from("alice", String(i));
  const many = await w(ReceiptKind.DELIVERED, 107n);
  t.deepEqual([many.advanced, many.coversMany, many.coveredSenderIds], [true, true, []]);
});

test("in one batch, each receipt names only the senders of what it covers", async (t) => {
  const p = persistence();
  for (const [i, sender] of ["alice", "carol", "dave", "erin"].entries()) {
    await p.appendMessage({ ...text("g", String(i + 1)), senderId: sender });
  }
  const at = (userId: string, seq: bigint) => ({
    conversationId: "g",
    userId,
    kind: ReceiptKind.DELIVERED,
    upTo: { seqs: { "us-east-1": seq } },
  });
  await p.writeReceipt({ receipt: at("carol", 2n) });
  const { results } = await p.batchWriteReceipts({
    receipts: [at("bob", 1n), at("carol", 4n), at("bob", 3n), at("frank", 4n)],
  });
  t.deepEqual(
    results.map((r) => r.coveredSenderIds),
    [["alice"], ["dave", "erin"], ["carol", "dave"], ["alice", "carol", "dave", "erin"]],
  );
});

test("BatchReadReceipts reads every kind, or only the kind asked for", async (t) => {
  const p = persistence();
  const write = (conversationId: string, userId: string, kind: ReceiptKind) =>
    p.writeReceipt({
      receipt: { conversationId, userId, kind, upTo: { seqs: { "us-east-1": 1n } } },
    });
  await write("c", "bob", ReceiptKind.DELIVERED);
  await write("c", "bob", ReceiptKind.READ);
  await write("d", "carol", ReceiptKind.DELIVERED);
  const kinds = async (kind?: ReceiptKind) =>
    (await p.batchReadReceipts({ conversationIds: ["c", "d"], kind })).receipts
      .map(
        (r) =>
          `${r.conversationId}/${r.userId}/${r.kind === ReceiptKind.READ ? "read" : "delivered"}`,
      )
      .sort();
  t.deepEqual(await kinds(), ["c/bob/delivered", "c/bob/read", "d/carol/delivered"]);
  t.deepEqual(await kinds(ReceiptKind.DELIVERED), ["c/bob/delivered", "d/carol/delivered"]);
  t.deepEqual(await kinds(ReceiptKind.READ), ["c/bob/read"]);
  const bad = await p
    .batchReadReceipts({ conversationIds: ["c"], kind: 7 as ReceiptKind })
    .catch((e) => e);
  t.is((bad as ConnectError).code, Code.InvalidArgument);
});

test("BatchAppendMessages keeps each conversation's request order and answers each item", async (t) => {
  const p = persistence(() => 1_000_000);
  const res = await p.batchAppendMessages({
    items: [
      text("a", "1"),
      text("b", "1"),
      text("a", "2"),
      text("a", "bad", "x", hlcFromMillis(1_000_000 + 3_600_000)),
      text("a", "1", "retry"),
      text("b", "2"),
    ],
  });
  const o = res.outcomes;
  t.is(o.length, 6);
  t.deepEqual(
    o.map((x) => [x.message?.conversationId, x.message?.seq]),
    [
      ["a", 1n],
      ["b", 1n],
      ["a", 2n],
      [undefined, undefined],
      ["a", 1n],
      ["b", 2n],
    ],
  );
  // A refused item answers itself; the others are stored, a retry is a duplicate.
  t.is(o[3]?.errorCode, Code.InvalidArgument);
  t.regex(o[3]?.errorMessage ?? "", /seen_hlc/);
  t.false(o[3]?.retryable);
  t.true(o[4]?.duplicate);
  t.deepEqual(o[4]?.message, o[0]?.message);
});

test("a send retried in two regions is answered and read once, at its lowest copy", async (t) => {
  // Two regions' stores with table replication between them, held back at first: the window
  // in which a retry in the other region makes a second copy.
  const east = new MemoryChatStore("us-east-1");
  const west = new MemoryChatStore("eu-west-1");
  const toWest = replicateMemoryTables({
    from: "us-east-1",
    to: "eu-west-1",
    pairs: [[east, west]],
  });
  const toEast = replicateMemoryTables({
    from: "eu-west-1",
    to: "us-east-1",
    pairs: [[west, east]],
  });
  t.teardown(() => Promise.all([toWest.close(), toEast.close()]).then(() => undefined));
  toWest.pause();
  toEast.pause();
  const pe = persistence(Date.now, east);
  const pw = persistence(Date.now, west);
  const first = await pe.appendMessage(text("c", "retried", "hello"));
  for (let i = 0; i < 3; i++) await pe.appendMessage(text("c", `e${i}`));
  const copy = await pw.appendMessage(text("c", "retried", "hello"));
  t.false(copy.duplicate, "before replication the other region cannot know");
  for (let i = 0; i < 3; i++) await pw.appendMessage(text("c", `w${i}`));
  toWest.resume();
  toEast.resume();
  await Promise.all([toWest.drained(), toEast.drained()]);

  const again = await pw.appendMessage(text("c", "retried", "hello"));
  t.true(again.duplicate, "once replicated, a retry finds the lowest copy, in any region");
  t.deepEqual(again.message, first.message);

  for (const p of [pe, pw]) {
    // Pages of two: the later copy falls on the first page, the earlier on the last.
    const seen: string[] = [];
    let before: { hlc: bigint; originRegion: string; seq: bigint } | undefined;
    for (;;) {
      const { history } = await p.readHistory({ query: { conversationId: "c", before, limit: 2 } });
      const page = history?.messages ?? [];
      seen.unshift(...page.map((m) => `${m.originRegion}:${m.clientMsgId}`));
      if (!history?.hasMore || page.length === 0) break;
      before = page[0];
    }
    t.deepEqual(
      seen.filter((s) => s.endsWith(":retried")),
      ["us-east-1:retried"],
    );
    t.is(seen.length, 7, `every other message once: ${seen.join(" ")}`);
  }
});
