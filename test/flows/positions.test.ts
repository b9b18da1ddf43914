import test from "ava";
import { ErrorCode, type ServerFrame } from "../../gen/chat/v1/client_pb.ts";
import { ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, within, withRegion } from "../support/region.ts";
import { connectIn, until, withRegions } from "../support/regions.ts";

// Positions a client presents (receipts, sync vectors) are checked against what exists: a
// position beyond it is never stored, relayed or taken as the truth.

const EAST = "us-east-1";
const WEST = "eu-west-1";

/** receiptsOf lists a user's receipts as [kind, upTo] with bigints spelled out. */
function receiptsOf(frame: ServerFrame, userId: string): string[] {
  if (frame.kind.case !== "receipts") return [`not receipts: ${frame.kind.case}`];
  return frame.kind.value.receipts
    .filter((r) => r.userId === userId)
    .map(
      (r) =>
        `${r.kind === ReceiptKind.READ ? "READ" : "DELIVERED"} ${JSON.stringify(r.upTo?.seqs, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`,
    );
}

test("receipts beyond the conversation's last message are refused and never stored or relayed", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  const m = await alice.send(dm.id, "the only message");
  const relayed: string[] = [];
  alice.on("receipt", (r) => {
    if (r.userId === "bob")
      relayed.push(
        JSON.stringify(r.upTo?.seqs, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
      );
  });
  const bob = await RawSocket.open(t, region);
  await bob.hello(region, "bob");
  const beyond = { seqs: { [region.region]: 999n } };
  bob.send(7, { case: "markRead", value: { conversationId: dm.id, upTo: beyond } });
  bob.send(8, { case: "ack", value: { conversations: [{ conversationId: dm.id, upTo: beyond }] } });
  for (const id of [7, 8]) {
    const answer = await bob.answer(id);
    t.is(answer.kind.case, "error", `request ${id} is refused`);
    if (answer.kind.case === "error") {
      t.is(answer.kind.value.code, ErrorCode.INVALID_ARGUMENT);
      t.false(answer.kind.value.retryable);
      t.regex(answer.kind.value.message, /999 is beyond .*last message .*\(1\)/);
    }
  }
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(relayed, [], "nothing reached the other member");
  t.deepEqual(
    (await alice.receipts(dm.id)).filter((r) => r.userId === "bob"),
    [],
    "nothing was stored",
  );

  // The real position is taken as before.
  const read = alice.once("receipt", (r) => r.userId === "bob" && r.kind === ReceiptKind.READ);
  const upTo = { seqs: { [region.region]: m.seq } };
  bob.send(9, { case: "markRead", value: { conversationId: dm.id, upTo } });
  t.is((await bob.answer(9)).kind.case, "ok");
  await within(read, 5_000, "bob's read receipt");
});

test("a sync from beyond the inbox's head answers the real head, and live delivery goes on", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  await alice.send(dm.id, "first");
  const bob = await RawSocket.open(t, region);
  await bob.hello(region, "bob");
  const replayed = await bob.next((f) => f.kind.case === "syncState" && f.requestId === 0);
  const head = replayed.kind.case === "syncState" ? replayed.kind.value.inboxHead?.seqs : {};
  t.deepEqual(head, { [region.region]: 1n }, "bob's inbox holds one entry");

  bob.send(5, {
    case: "sync",
    value: { inbox: { seqs: { [region.region]: 999n, mars: 5n } } },
  });
  const state = await bob.answer(5);
  t.is(state.kind.case, "syncState");
  if (state.kind.case === "syncState") {
    t.deepEqual(
      state.kind.value.inboxHead?.seqs,
      { [region.region]: 1n },
      "the head where the inbox really is, and no region that does not exist",
    );
  }

  await alice.send(dm.id, "second");
  const live = await bob.next(
    (f) =>
      f.kind.case === "deliveries" &&
      f.kind.value.entries.some(
        (e) => e.message?.content.case === "text" && e.message.content.value === "second",
      ),
  );
  t.false(live.kind.case === "deliveries" && live.kind.value.replay, "delivered live");
});

test("a receipt for another region's message waits for replication; one beyond its last message is refused retryably", async (t) => {
  t.timeout(60_000);
  const regions = await withRegions(t, { env: { REPLICATION_WAIT_MS: "500" } });
  const alice = await connectIn(t, regions, EAST, "alice");
  const dm = await alice.createDirect("bob");
  await regions.converged();
  regions.partition();
  // bob saw alice's message in the east (as a client does before failing over), and acks it in
  // the west, which has not received it yet.
  const m = await alice.send(dm.id, "sent while the regions are apart");
  const bob = await RawSocket.open(t, { wsUrl: regions.region(WEST).gatewayUrls[0] as string });
  await bob.hello({ token: (u) => regions.token(u) }, "bob");
  const upTo = { seqs: { [EAST]: m.seq } };
  bob.send(7, { case: "ack", value: { conversations: [{ conversationId: dm.id, upTo }] } });
  t.is((await bob.answer(7)).kind.case, "ok", "the gateway takes the ack and retries it");
  bob.send(8, { case: "markRead", value: { conversationId: dm.id, upTo } });
  const refused = await bob.answer(8, 10_000);
  t.is(refused.kind.case, "error");
  if (refused.kind.case === "error") {
    t.is(refused.kind.value.code, ErrorCode.UNAVAILABLE);
    t.true(refused.kind.value.retryable);
    t.regex(refused.kind.value.message, /not replicated/);
  }
  bob.send(9, { case: "getReceipts", value: { conversationId: dm.id } });
  t.deepEqual(receiptsOf(await bob.answer(9), "bob"), [], "nothing stored in the west yet");

  // Once the west has the message, the retried ack goes through and reaches alice.
  const delivered = alice.once(
    "receipt",
    (r) => r.userId === "bob" && r.kind === ReceiptKind.DELIVERED,
  );
  regions.heal();
  const [receipt] = await within(delivered, 20_000, "bob's delivered receipt, retried");
  t.is(receipt.upTo?.seqs[EAST], m.seq);

  // A position beyond the east's last message stays refused once the west has caught up.
  await regions.converged();
  const beyond = { seqs: { [EAST]: m.seq + 5n } };
  bob.send(10, { case: "markRead", value: { conversationId: dm.id, upTo: beyond } });
  const still = await bob.answer(10, 10_000);
  t.true(still.kind.case === "error" && still.kind.value.code === ErrorCode.UNAVAILABLE);
  await until(async () => {
    bob.send(11, { case: "getReceipts", value: { conversationId: dm.id } });
    return receiptsOf(await bob.answer(11), "bob").length === 1;
  }, "bob's one receipt");
  bob.send(12, { case: "getReceipts", value: { conversationId: dm.id } });
  t.deepEqual(receiptsOf(await bob.answer(12), "bob"), [`DELIVERED {"${EAST}":"${m.seq}"}`]);
});
