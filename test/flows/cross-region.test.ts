import test from "ava";
import type { ChatClient } from "../../client/index.ts";
import type { Message } from "../../gen/chat/v1/types_pb.ts";
import { ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { within } from "../support/region.ts";
import { connectIn, withRegions } from "../support/regions.ts";

const EAST = "us-east-1";
const WEST = "eu-west-1";

const texts = (ms: Message[]) =>
  ms.flatMap((m) => (m.content.case === "text" ? [m.content.value] : []));

/** historyOf reads a conversation's whole history through a client, oldest first. */
async function historyOf(client: ChatClient, conversationId: string): Promise<string[]> {
  const h = await client.history(conversationId, { limit: 200 });
  return h.messages.map(
    (m) => `${m.originRegion}:${m.seq}:${m.content.case === "text" ? m.content.value : "*"}`,
  );
}

test("users in two regions chat 1:1: live delivery crosses on the mirrored bus, not the table", async (t) => {
  const regions = await withRegions(t, {
    replication: { table: { delayMs: 100 }, topics: { delayMs: 50 } },
  });
  const alice = await connectIn(t, regions, EAST, "alice");
  const bob = await connectIn(t, regions, WEST, "bob");
  const aliceSaw = new MessageRecorder(alice);
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");

  // With table replication held back, only the mirrored bus can bring alice's message over.
  const tableEastToWest = regions.replication.find((r) => r.name === `table ${EAST} → ${WEST}`);
  tableEastToWest?.pause();
  await alice.send(dm.id, "hi bob");
  await bobSaw.count(1, dm.id, 5_000);
  t.is(bobSaw.messages[0]?.originRegion, EAST);
  tableEastToWest?.resume();

  // bob answers from his region: it learns of the conversation from the table, waiting for it.
  const reply = await bob.send(dm.id, "hi alice");
  t.is(reply.originRegion, WEST);
  t.true(reply.hlc > (bobSaw.messages[0]?.hlc ?? 0n), "the reply sorts after what it answers");
  await aliceSaw.count(2, dm.id);
  for (let i = 0; i < 3; i++) await alice.send(dm.id, `a${i}`);
  await bobSaw.count(5, dm.id);
  t.deepEqual(texts(bobSaw.messages), ["hi bob", "hi alice", "a0", "a1", "a2"]);
  t.deepEqual(texts(aliceSaw.messages), ["hi bob", "hi alice", "a0", "a1", "a2"]);

  await regions.converged();
  t.deepEqual(await historyOf(alice, dm.id), await historyOf(bob, dm.id), "one history everywhere");
});

test("a group across regions: messages, receipts, typing and presence cross both ways", async (t) => {
  const regions = await withRegions(t);
  const alice = await connectIn(t, regions, EAST, "alice");
  const bob = await connectIn(t, regions, WEST, "bob");
  const carol = await connectIn(t, regions, WEST, "carol");
  const saw = new Map([alice, bob, carol].map((c) => [c, new MessageRecorder(c)]));
  const group = await alice.createGroup("across", ["bob", "carol"]);
  await alice.send(group.id, "from east");
  await (saw.get(bob) as MessageRecorder).count(1, group.id);
  await bob.send(group.id, "from west");
  await carol.send(group.id, "also west");
  for (const [c, rec] of saw) {
    await rec.count(3, group.id);
    t.deepEqual(rec.texts(group.id), ["from east", "from west", "also west"], c.userId);
  }

  // Delivered receipts of west's members reach the sender in the east.
  const receipts: Array<{ userId: string; kind: ReceiptKind; upTo?: Record<string, bigint> }> = [];
  alice.on("receipt", (r) => receipts.push({ userId: r.userId, kind: r.kind, upTo: r.upTo?.seqs }));
  await alice.send(group.id, "did you get it?");
  await within(
    new Promise<void>((resolve) => {
      const check = () =>
        receipts.some(
          (r) =>
            r.userId === "carol" &&
            r.kind === ReceiptKind.DELIVERED &&
            (r.upTo?.[EAST] ?? 0n) >= 2n,
        )
          ? resolve()
          : setTimeout(check, 20);
      check();
    }),
    10_000,
    "carol's delivered receipt in the east",
  );

  // Typing crosses.
  const typing = alice.once("typing", (x) => x.userId === "bob" && x.active);
  await bob.setTyping(group.id, true);
  await within(typing, 5_000, "bob typing, seen in the east");

  // Presence: bob is connected only in the west, and the east's first snapshot says so.
  const [bobPresence] = await alice.watchPresence(["bob"]);
  t.true(bobPresence?.online);
  t.deepEqual(bobPresence?.regions, [WEST]);
});

test("both regions send to one conversation at the same moment: nothing lost, each origin in order", async (t) => {
  const regions = await withRegions(t);
  const alice = await connectIn(t, regions, EAST, "alice");
  const bob = await connectIn(t, regions, WEST, "bob");
  const aliceSaw = new MessageRecorder(alice);
  const bobSaw = new MessageRecorder(bob);
  const group = await alice.createGroup("busy", ["bob"]);
  await bobSaw.until((ms) => ms.some((m) => m.conversationId === group.id), 5_000, "the group");
  await Promise.all([
    (async () => {
      for (let i = 0; i < 15; i++) await alice.send(group.id, `e${i}`);
    })(),
    (async () => {
      for (let i = 0; i < 15; i++) await bob.send(group.id, `w${i}`);
    })(),
  ]);
  for (const rec of [aliceSaw, bobSaw]) {
    await rec.count(30, group.id, 10_000);
    const got = rec.messages.filter(
      (m) => m.conversationId === group.id && m.content.case === "text",
    );
    for (const origin of [EAST, WEST]) {
      const seqs = got.filter((m) => m.originRegion === origin).map((m) => m.seq);
      t.deepEqual(
        seqs,
        [...seqs].sort((a, b) => (a < b ? -1 : 1)),
        `${origin} in seq order`,
      );
      t.is(new Set(seqs).size, seqs.length, "no duplicates");
    }
    t.is(got.length, 30);
  }
  await regions.converged();
  const [east, west] = [await historyOf(alice, group.id), await historyOf(bob, group.id)];
  t.is(east.length, 31, "the creation and all 30 messages");
  t.deepEqual(east, west, "both regions show one display order");
});
