import test from "ava";
import { ErrorCode } from "../../gen/chat/v1/client_pb.ts";
import { ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, within, withRegion } from "../support/region.ts";

test("delivered and read receipts reach the other members", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");

  const delivered = alice.once(
    "receipt",
    (r) => r.userId === "bob" && r.kind === ReceiptKind.DELIVERED,
  );
  const m = await alice.send(dm.id, "did you get this?");
  const [receipt] = await within(delivered, 5_000, "bob's delivered receipt");
  t.is(receipt.conversationId, dm.id);
  t.is(receipt.upTo?.seqs[region.region], m.seq, "bob's device acknowledged it automatically");

  await bobSaw.count(1);
  const read = alice.once("receipt", (r) => r.userId === "bob" && r.kind === ReceiptKind.READ);
  await bob.markRead(dm.id, new Map([[m.originRegion, m.seq]]));
  const [readReceipt] = await within(read, 5_000, "bob's read receipt");
  t.is(readReceipt.upTo?.seqs[region.region], m.seq);

  const all = await alice.receipts(dm.id);
  const bobs = all
    .filter((r) => r.userId === "bob")
    .map((r) => [r.kind, r.upTo?.seqs[region.region]]);
  t.deepEqual(
    bobs.sort(),
    [
      [ReceiptKind.DELIVERED, m.seq],
      [ReceiptKind.READ, m.seq],
    ].sort(),
  );
});

test("in a group, a receipt goes live to the senders it covers and the reader's other devices; the rest fetch it", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bobPhone = await connect(t, region, "bob", "phone");
  const bobLaptop = await connect(t, region, "bob", "laptop");
  const carol = await connect(t, region, "carol");
  const group = await alice.createGroup("g", ["bob", "carol"]);
  const heard = new Map<string, string[]>();
  for (const [name, client] of Object.entries({ alice, bobPhone, bobLaptop, carol })) {
    heard.set(name, []);
    client.on("receipt", (r) => {
      if (r.userId === "bob" && r.kind === ReceiptKind.READ)
        heard.get(name)?.push(r.conversationId);
    });
  }
  const seen = [bobPhone, bobLaptop, carol].map((c) => new MessageRecorder(c));
  const m = await alice.send(group.id, "lunch?");
  await Promise.all(seen.map((s) => s.count(1)));

  const toAlice = alice.once("receipt", (r) => r.userId === "bob" && r.kind === ReceiptKind.READ);
  const toLaptop = bobLaptop.once(
    "receipt",
    (r) => r.userId === "bob" && r.kind === ReceiptKind.READ,
  );
  await bobPhone.markRead(group.id, new Map([[m.originRegion, m.seq]]));
  await within(
    Promise.all([toAlice, toLaptop]),
    5_000,
    "bob's read receipt at alice and at his laptop",
  );
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(heard.get("carol"), [], "carol sent nothing it covers: not told");
  t.deepEqual(heard.get("bobPhone"), [], "the device that read knows already");

  const fetched = (await carol.receipts(group.id)).find(
    (r) => r.userId === "bob" && r.kind === ReceiptKind.READ,
  );
  t.is(fetched?.upTo?.seqs[region.region], m.seq, "carol fetches it when she wants it");
});

test("typing indicators reach the other members; non-members cannot send them", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const carol = await connect(t, region, "carol");
  const group = await alice.createGroup("g", ["bob"]);

  const typing = bob.once("typing");
  await alice.setTyping(group.id, true);
  const [start] = await within(typing, 5_000, "typing start");
  t.deepEqual([start.conversationId, start.userId, start.active], [group.id, "alice", true]);
  const stop = bob.once("typing", (ty) => !ty.active);
  await alice.setTyping(group.id, false);
  await within(stop, 5_000, "typing stop");

  const err = await carol.setTyping(group.id, true).catch((e: Error) => e);
  t.true(err instanceof Error && /not a member/.test(err.message), "non-members cannot type");
});

test("presence: watchers see users they have written with come and go", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bobFirst = await connect(t, region, "bob", "phone");
  const dm = await alice.createDirect("bob");
  // Presence is shared between users who have both written in a conversation they share.
  await alice.send(dm.id, "hi bob");
  await bobFirst.send(dm.id, "hi alice");
  await bobFirst.close();

  // The gateway forgets bob's closed session a moment after his socket is gone.
  let snapshot = await alice.watchPresence(["bob", "stranger"]);
  for (let i = 0; i < 50 && snapshot.some((p) => p.userId === "bob" && p.online); i++) {
    await new Promise((r) => setTimeout(r, 50));
    snapshot = await alice.watchPresence(["bob", "stranger"]);
  }
  t.deepEqual(
    snapshot.map((p) => [p.userId, p.online]),
    [["bob", false]],
    "strangers (no conversation both wrote in) are left out",
  );
  const online = alice.once("presence", (p) => p.userId === "bob" && p.online);
  const bob = await connect(t, region, "bob", "laptop");
  await within(online, 5_000, "bob online");
  const offline = alice.once("presence", (p) => p.userId === "bob" && !p.online);
  await bob.close();
  const [p] = await within(offline, 5_000, "bob offline");
  t.false(p.online);
});

test("receipts in a region that does not exist are refused, naming it, and never relayed", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  await alice.send(dm.id, "one message");
  const relayed: string[] = [];
  alice.on("receipt", (r) => {
    if (r.userId === "bob") relayed.push(JSON.stringify(r.upTo?.seqs, (_k, v) => String(v)));
  });
  const bob = await RawSocket.open(t, region);
  await bob.hello(region, "bob");
  const upTo = { seqs: { [region.region]: 1n, mars: 5n } };
  bob.send(7, { case: "markRead", value: { conversationId: dm.id, upTo } });
  bob.send(8, { case: "ack", value: { conversations: [{ conversationId: dm.id, upTo }] } });
  for (const id of [7, 8]) {
    const answer = await bob.answer(id);
    t.is(answer.kind.case, "error");
    if (answer.kind.case === "error") {
      t.is(answer.kind.value.code, ErrorCode.INVALID_ARGUMENT);
      t.regex(answer.kind.value.message, /region "mars"/);
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  t.deepEqual(relayed, [], "nothing reached the other member");
  t.deepEqual(
    (await alice.receipts(dm.id)).filter((r) => r.userId === "bob"),
    [],
    "nothing was stored",
  );
});
