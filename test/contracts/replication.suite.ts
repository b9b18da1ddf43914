import { create } from "@bufbuild/protobuf";
import test from "ava";
import type { Replication, ReplicationOptions } from "../../dev/replication/replication.ts";
import {
  ConversationKind,
  type Message,
  MessageSchema,
  PushPlatform,
} from "../../gen/chat/v1/types_pb.ts";
import { type ChatStore, SeqConflictError } from "../../services/shared/ports/chat-store.ts";
import type { InboxStore } from "../../services/shared/ports/inbox-store.ts";

/** RegionStores are one region's chat and inbox stores. */
export interface RegionStores {
  region: string;
  chat: ChatStore;
  inbox: InboxStore;
}

/** TwoRegions are two regions' stores with table replication running both ways. */
export interface TwoRegions {
  a: RegionStores;
  b: RegionStores;
  /** ab replicates a's items to b, ba b's to a. */
  ab: Replication;
  ba: Replication;
  /** items lists every item a region holds, normalized for comparison, sorted by key. */
  items(region: "a" | "b"): Promise<string[]>;
  /** writeForeign makes region a write an item whose key names region b (a broken store). */
  writeForeign(): Promise<void>;
  dispose(): Promise<void>;
}

/** TwoRegionsFactory starts two fresh regions' stores with replication tuned by `options`. */
export type TwoRegionsFactory = (options: ReplicationOptions) => Promise<TwoRegions>;

let counter = 0;
const uid = (p: string) => `${p}_${process.pid}_${++counter}`;

/** append appends the next message the way persistence does: read the head, then CAS. */
async function append(store: ChatStore, conversationId: string, sender: string, text: string) {
  for (;;) {
    const head = await store.head(conversationId);
    const m = create(MessageSchema, {
      conversationId,
      originRegion: store.region,
      seq: head.seq + 1n,
      hlc: head.hlc + 1n + BigInt(Date.now()) * 65_536n,
      senderId: sender,
      clientMsgId: `${text}`,
      content: { case: "text", value: text },
    });
    try {
      await store.append({ message: m, expectedSeq: head.seq, appendedAtMs: Date.now() });
      return m;
    } catch (err) {
      if (err instanceof SeqConflictError) continue;
      throw err;
    }
  }
}

/** writeBoth writes, in both regions at once, everything a conversation produces. */
async function writeBoth(two: TwoRegions, conv: string) {
  const meta = { id: conv, kind: ConversationKind.GROUP, title: "both", createdBy: "ann" };
  await Promise.all(
    [two.a, two.b].map(async (r, i) => {
      const user = i === 0 ? "ann" : "ben";
      await r.chat.createConversation(meta, ["ann", "ben"], 1n);
      const sent: Message[] = [];
      for (let n = 0; n < 8; n++) sent.push(await append(r.chat, conv, user, `${r.region}-${n}`));
      await r.inbox.append(sent.map((message) => ({ userId: "ann", message })));
      await r.chat.writeReceipt(conv, user, "delivered", new Map([[r.region, 8n]]));
      await r.chat.advanceRoutedSeq(conv, 8n);
      await r.chat.savePushToken(user, {
        deviceId: `${user}-phone`,
        platform: PushPlatform.WEBHOOK,
        token: `https://push.example/${user}`,
        updatedAtMs: Date.now(),
      });
    }),
  );
}

/**
 * replicationContract registers the two-region contract tests: writes in both regions at once,
 * replicated with delay and reordering, converge to the same items in both; a partition holds
 * everything back and reports its lag; an item two regions wrote stops replication loudly.
 */
export function replicationContract(name: string, factory: TwoRegionsFactory): void {
  const withRegions = async (
    t: { teardown: (f: () => Promise<void>) => void },
    options: ReplicationOptions,
  ) => {
    const two = await factory(options);
    t.teardown(() => two.dispose());
    return two;
  };

  test(`${name}: writes in both regions, delayed and reordered, converge to the same items`, async (t) => {
    const two = await withRegions(t, { delayMs: 100, jitterMs: 200 });
    const conv = uid("g");
    await writeBoth(two, conv);
    await Promise.all([two.ab.drained(), two.ba.drained()]);
    const [a, b] = await Promise.all([two.items("a"), two.items("b")]);
    t.true(a.length > 40, `region a holds ${a.length} items`);
    t.deepEqual(a, b, "both regions hold the same items");

    for (const r of [two.a, two.b]) {
      const history = await r.chat.history(conv, undefined, 100);
      t.is(history.length, 16, `${r.region} sees both regions' messages`);
      const c = await r.chat.getConversation(conv);
      t.deepEqual(c?.memberIds, ["ann", "ben"]);
      const receipts = await r.chat.readReceipts(conv);
      t.deepEqual(receipts.map((x) => [x.userId, Object.fromEntries(x.upTo)]).sort(), [
        ["ann", { [two.a.region]: 8n }],
        ["ben", { [two.b.region]: 8n }],
      ]);
      const inbox = await r.inbox.read("ann", new Map(), 100);
      t.is(inbox.entries.length, 16, `${r.region} reads ann's inbox of both regions`);
      t.deepEqual(
        Object.fromEntries((await r.chat.heads([conv])).get(conv) ?? []),
        { [two.a.region]: 8n, [two.b.region]: 8n },
        `${r.region} knows both regions' heads`,
      );
    }
    const order = async (r: RegionStores) =>
      (await r.chat.history(conv, undefined, 100)).map((m) => `${m.originRegion}:${m.seq}`);
    t.deepEqual(await order(two.a), await order(two.b), "the same display order in both");
    t.is(
      (await two.b.chat.findSend(conv, "ann", `${two.a.region}-3`))?.originRegion,
      two.a.region,
      "a send's dedup item is visible in the other region once replicated",
    );

    // Nothing loops: once converged, no item goes round again.
    const applied = [two.ab.lag().applied, two.ba.lag().applied];
    await new Promise((r) => setTimeout(r, 500));
    t.deepEqual([two.ab.lag().applied, two.ba.lag().applied], applied);
  });

  test(`${name}: a partition holds everything back and reports its lag; healing converges`, async (t) => {
    const two = await withRegions(t, { delayMs: 0 });
    two.ab.pause();
    const conv = uid("p");
    const m = await append(two.a.chat, conv, "ann", "during");
    await until(() => two.ab.lag().pending > 0, "the write to reach the replicator");
    t.true(two.ab.paused);
    t.is(await two.b.chat.findSend(conv, "ann", "during"), undefined, "nothing crosses");
    await new Promise((r) => setTimeout(r, 150));
    const lag = two.ab.lag();
    t.true(lag.pending >= 3, `pending ${lag.pending}`);
    t.true(lag.oldestMs >= 100, `the oldest pending item is ${lag.oldestMs} ms old`);
    two.ab.resume();
    await two.ab.drained();
    t.deepEqual(await two.b.chat.findSend(conv, "ann", "during"), m);
    t.is(two.ab.lag().pending, 0);
    await two.ba.drained();
    t.deepEqual(await two.items("a"), await two.items("b"));
  });

  test(`${name}: an item two regions write stops replication loudly`, async (t) => {
    const errors: Error[] = [];
    const two = await withRegions(t, { onError: (e) => errors.push(e) });
    await two.writeForeign();
    const err = await t.throwsAsync(two.ab.drained(5_000));
    t.regex(err?.message ?? "", /two regions write it|belongs to/);
    t.regex(two.ab.lag().error ?? "", /belongs to/);
    t.is(errors.length, 1, "the failure is reported once");
  });
}

async function until(pred: () => boolean, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
