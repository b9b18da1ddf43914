import { create } from "@bufbuild/protobuf";
import test from "ava";
import {
  ConversationKind,
  type Message,
  MessageSchema,
  PushPlatform,
} from "../../gen/chat/v1/types_pb.ts";
import {
  type ChatStore,
  DuplicateSendError,
  SeqConflictError,
} from "../../services/shared/ports/chat-store.ts";

/** ChatStoreFactory makes a fresh, empty store of `region`, and a way to dispose of it. */
export type ChatStoreFactory = (
  region: string,
  opts: { sendDedupSeconds?: number },
) => Promise<{ store: ChatStore; dispose?: () => Promise<void> }>;

let counter = 0;
/** uid keeps ids unique across tests that share one backend. */
const uid = (p: string) => `${p}_${process.pid}_${++counter}`;

function msg(
  region: string,
  conversationId: string,
  seq: bigint,
  hlc: bigint,
  over: Partial<Message> = {},
) {
  return create(MessageSchema, {
    conversationId,
    originRegion: region,
    seq,
    hlc,
    senderId: "alice",
    senderDeviceId: "phone",
    clientMsgId: `c${seq}`,
    content: { case: "text", value: `text ${seq}` },
    ...over,
  });
}

/** append appends the next message the way persistence does: read the head, then CAS. */
async function append(store: ChatStore, conversationId: string, over: Partial<Message> = {}) {
  for (;;) {
    const head = await store.head(conversationId);
    const m = msg(store.region, conversationId, head.seq + 1n, head.hlc + 1n, over);
    try {
      await store.append({ message: m, expectedSeq: head.seq, appendedAtMs: Date.now() });
      return m;
    } catch (err) {
      if (err instanceof SeqConflictError) continue;
      throw err;
    }
  }
}

/**
 * chatStoreContract registers the ChatStore contract tests for one implementation;
 * `restartBackend`, for real backends, stops and restarts the server mid-test (keeping data).
 */
export function chatStoreContract(
  name: string,
  factory: ChatStoreFactory,
  opts: { restartBackend?: () => Promise<void> } = {},
): void {
  const withStore = async (
    t: { teardown: (f: () => Promise<void>) => void },
    region = "us-east-1",
    opts: { sendDedupSeconds?: number } = {},
  ) => {
    const { store, dispose } = await factory(region, opts);
    if (dispose) t.teardown(dispose);
    return store;
  };

  test(`${name}: a conversation is created once with its members, merged and sorted`, async (t) => {
    const store = await withStore(t);
    const id = uid("d");
    const meta = { id, kind: ConversationKind.DIRECT, title: "", createdBy: "bob" };
    await store.createConversation(meta, ["bob", "alice"], 10n);
    await store.createConversation({ ...meta, createdBy: "alice" }, ["alice", "bob"], 20n);
    const c = await store.getConversation(id);
    t.deepEqual(c, { ...meta, memberIds: ["alice", "bob"] });
    t.is(await store.getConversation(uid("missing")), undefined);
    const page = await store.listMemberships("alice", { limit: 100 });
    t.true(page.conversations.some((x) => x.id === id));
  });

  test(`${name}: append allocates dense seqs only on an unchanged head (compare-and-set)`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    t.deepEqual(await store.head(conv), { seq: 0n, hlc: 0n });
    const m1 = msg(store.region, conv, 1n, 100n);
    await store.append({ message: m1, expectedSeq: 0n, appendedAtMs: Date.now() });
    t.deepEqual(await store.head(conv), { seq: 1n, hlc: 100n });
    const stale = msg(store.region, conv, 1n, 101n, { clientMsgId: "other" });
    await t.throwsAsync(
      store.append({ message: stale, expectedSeq: 0n, appendedAtMs: Date.now() }),
      {
        instanceOf: SeqConflictError,
      },
    );
    t.deepEqual(await store.head(conv), { seq: 1n, hlc: 100n }, "a refused append writes nothing");
    t.is(await store.findSend(conv, "alice", "other"), undefined);
  });

  test(`${name}: a reused client_msg_id is refused with the stored message, writing nothing`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    const first = await append(store, conv, { clientMsgId: "dup" });
    const again = msg(store.region, conv, 2n, 200n, { clientMsgId: "dup" });
    const err = await t.throwsAsync(
      store.append({ message: again, expectedSeq: 1n, appendedAtMs: Date.now() }),
      {
        instanceOf: DuplicateSendError,
      },
    );
    t.deepEqual((err as DuplicateSendError).existing, first);
    t.deepEqual(await store.head(conv), { seq: 1n, hlc: first.hlc });
    t.deepEqual(await store.findSend(conv, "alice", "dup"), first);
    t.is(await store.findSend(conv, "bob", "dup"), undefined, "ids are per sender");
  });

  test(`${name}: concurrent appends to one conversation all land, once each, densely`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    const n = 40;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => append(store, conv, { clientMsgId: `w${i}` })),
    );
    t.deepEqual(
      results.map((m) => m.seq).sort((a, b) => (a < b ? -1 : 1)),
      Array.from({ length: n }, (_, i) => BigInt(i + 1)),
    );
    const all = await store.messagesAfter(conv, store.region, 0n, 1000);
    t.is(all.length, n);
    t.deepEqual(new Set(all.map((m) => m.clientMsgId)).size, n);
  });

  test(`${name}: history pages backwards in display order without loading everything`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    for (let i = 0; i < 30; i++) await append(store, conv, { clientMsgId: `h${i}` });
    const newest = await store.history(conv, undefined, 10);
    t.deepEqual(
      newest.map((m) => m.seq),
      Array.from({ length: 10 }, (_, i) => BigInt(30 - i)),
    );
    const last = newest.at(-1) as Message;
    const next = await store.history(
      conv,
      { hlc: last.hlc, region: last.originRegion, seq: last.seq },
      10,
    );
    t.deepEqual(
      next.map((m) => m.seq),
      Array.from({ length: 10 }, (_, i) => BigInt(20 - i)),
    );
    t.deepEqual(await store.history(conv, { hlc: 0n, region: "", seq: 0n }, 10), []);
    const after = await store.messagesAfter(conv, store.region, 25n, 3);
    t.deepEqual(
      after.map((m) => m.seq),
      [26n, 27n, 28n],
    );
  });

  test(`${name}: membership changes ride on appends and are merged on read`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    const club = { id: conv, kind: ConversationKind.GROUP, title: "club", createdBy: "ann" };
    const head = await store.head(conv);
    const created = msg(store.region, conv, 1n, 10n, {
      content: {
        case: "membership",
        value: {
          action: 1,
          userIds: ["ann", "ben"],
          title: "club",
          $typeName: "chat.v1.MembershipChange",
        },
      },
    });
    await store.append({
      message: created,
      expectedSeq: head.seq,
      appendedAtMs: Date.now(),
      create: club,
      membership: { userIds: ["ann", "ben"], member: true, conversation: club },
    });
    t.deepEqual((await store.getConversation(conv))?.memberIds, ["ann", "ben"]);
    const removal = msg(store.region, conv, 2n, 20n, { clientMsgId: "rm" });
    await store.append({
      message: removal,
      expectedSeq: 1n,
      appendedAtMs: Date.now(),
      membership: { userIds: ["ben"], member: false, conversation: club },
    });
    const c = await store.getConversation(conv);
    t.deepEqual(c?.memberIds, ["ann"]);
    t.is(c?.title, "club");
    const bens = await store.listMemberships("ben", { limit: 100 });
    t.false(bens.conversations.some((x) => x.id === conv));
  });

  test(`${name}: listMemberships pages by conversation id`, async (t) => {
    const store = await withStore(t);
    const user = uid("u");
    const ids = Array.from({ length: 5 }, (_, i) => `${uid("p")}_${i}`);
    for (const id of ids) {
      await store.createConversation(
        { id, kind: ConversationKind.DIRECT, title: "", createdBy: user },
        [user, "x"],
        1n,
      );
    }
    const first = await store.listMemberships(user, { limit: 3 });
    t.true(first.more);
    t.is(first.conversations.length, 3);
    const rest = await store.listMemberships(user, {
      limit: 3,
      after: first.conversations.at(-1)?.id,
    });
    t.false(rest.more);
    t.deepEqual(
      [...first.conversations, ...rest.conversations].map((c) => c.id),
      [...ids].sort(),
    );
  });

  test(`${name}: the routing cursor only moves forward and finds abandoned sends`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    const since = Date.now() - 1;
    for (let i = 0; i < 3; i++) await append(store, conv, { clientMsgId: `r${i}` });
    t.is(await store.routedSeq(conv), 0n);
    const unrouted = (await store.unrouted(since, Date.now() + 1, 100)).filter(
      (m) => m.conversationId === conv,
    );
    t.deepEqual(
      unrouted.map((m) => m.seq),
      [1n, 2n, 3n],
    );
    await store.advanceRoutedSeq(conv, 2n);
    await store.advanceRoutedSeq(conv, 1n);
    t.is(await store.routedSeq(conv), 2n);
    const left = (await store.unrouted(since, Date.now() + 1, 100)).filter(
      (m) => m.conversationId === conv,
    );
    t.deepEqual(
      left.map((m) => m.seq),
      [3n],
    );
    t.deepEqual(
      (await store.unrouted(Date.now() + 10_000, Date.now() + 20_000, 100)).filter(
        (m) => m.conversationId === conv,
      ),
      [],
      "outside the window",
    );
  });

  test(`${name}: receipts only advance, entry by entry`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    const r1 = await store.writeReceipt(conv, "bob", "delivered", new Map([["us-east-1", 5n]]));
    t.true(r1.advanced);
    const r2 = await store.writeReceipt(
      conv,
      "bob",
      "delivered",
      new Map([
        ["us-east-1", 3n],
        ["eu-west-1", 2n],
      ]),
    );
    t.true(r2.advanced, "a new region advanced");
    t.deepEqual(r1.before, new Map(), "nothing before the first write");
    t.deepEqual(r2.before, new Map([["us-east-1", 5n]]), "what the write found");
    t.deepEqual(
      r2.merged,
      new Map([
        ["us-east-1", 5n],
        ["eu-west-1", 2n],
      ]),
    );
    const r3 = await store.writeReceipt(conv, "bob", "delivered", new Map([["us-east-1", 4n]]));
    t.false(r3.advanced);
    await store.writeReceipt(conv, "bob", "read", new Map([["us-east-1", 1n]]));
    const all = await store.readReceipts(conv);
    t.deepEqual(
      all.map((r) => [r.userId, r.kind, Object.fromEntries(r.upTo)]).sort(),
      [
        ["bob", "delivered", { "us-east-1": 5n, "eu-west-1": 2n }],
        ["bob", "read", { "us-east-1": 1n }],
      ].sort(),
    );
  });

  test(`${name}: heads give each conversation's last seq per region`, async (t) => {
    const store = await withStore(t);
    const [busy, quiet] = [uid("g"), uid("g")];
    for (let i = 0; i < 3; i++) await append(store, busy, { clientMsgId: `h${i}` });
    const heads = await store.heads([busy, quiet]);
    t.deepEqual(
      heads,
      new Map([
        [busy, new Map([[store.region, 3n]])],
        [quiet, new Map()],
      ]),
    );
  });

  test(`${name}: sent records are kept apart from receipts, one per user`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    await store.writeReceipt(conv, "ann", "sent", new Map([[store.region, 2n]]));
    await store.writeReceipt(conv, "ann", "sent", new Map([[store.region, 5n]]));
    await store.writeReceipt(conv, "ann", "delivered", new Map([[store.region, 1n]]));
    const receipts = await store.readReceipts(conv);
    t.deepEqual(receipts.map((r) => `${r.userId} ${r.kind} ${r.upTo.get(store.region)}`).sort(), [
      "ann delivered 1",
      "ann sent 5",
    ]);
  });

  test(`${name}: push tokens are saved per device, replaced, and deleted`, async (t) => {
    const store = await withStore(t);
    const user = uid("u");
    await store.savePushToken(user, {
      deviceId: "a",
      platform: PushPlatform.FCM,
      token: "t1",
      updatedAtMs: 1,
    });
    await store.savePushToken(user, {
      deviceId: "b",
      platform: PushPlatform.APNS,
      token: "t2",
      updatedAtMs: 1,
    });
    await store.savePushToken(user, {
      deviceId: "a",
      platform: PushPlatform.FCM,
      token: "t3",
      updatedAtMs: 2,
    });
    t.deepEqual((await store.listPushTokens(user)).map((x) => [x.deviceId, x.token]).sort(), [
      ["a", "t3"],
      ["b", "t2"],
    ]);
    await store.deletePushToken(user, "a", 3);
    t.deepEqual(
      (await store.listPushTokens(user)).map((x) => x.deviceId),
      ["b"],
    );
  });

  test(`${name}: stored messages cannot be changed through the objects passed or returned`, async (t) => {
    const store = await withStore(t);
    const conv = uid("g");
    const m = await append(store, conv);
    m.content = { case: "text", value: "tampered" };
    const [read] = await store.history(conv, undefined, 1);
    t.deepEqual(read?.content, { case: "text", value: "text 1" });
    if (read) read.senderId = "eve";
    const [again] = await store.history(conv, undefined, 1);
    t.is(again?.senderId, "alice");
  });

  test(`${name}: a client_msg_id is forgotten after the dedup retention`, async (t) => {
    const store = await withStore(t, "us-east-1", { sendDedupSeconds: 3 });
    const conv = uid("g");
    await append(store, conv, { clientMsgId: "old" });
    t.truthy(await store.findSend(conv, "alice", "old"));
    await new Promise((r) => setTimeout(r, 4_100));
    t.is(await store.findSend(conv, "alice", "old"), undefined);
    const again = await append(store, conv, { clientMsgId: "old" });
    t.is(again.seq, 2n, "the id can be used again");
  });

  const restart = opts.restartBackend;
  if (restart) {
    test.serial(
      `${name}: a restarted backend keeps what was written, and appends carry on`,
      async (t) => {
        const store = await withStore(t);
        const conv = uid("g");
        const first = await append(store, conv, { clientMsgId: "before" });
        await restart();
        t.deepEqual(await store.findSend(conv, "alice", "before"), first);
        const next = await append(store, conv, { clientMsgId: "after" });
        t.is(next.seq, 2n);
      },
    );
  }
}
