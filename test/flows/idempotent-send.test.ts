import test from "ava";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, operatorCall, withRegion } from "../support/region.ts";

test("a retry with the same client_msg_id returns the original message and is delivered once", async (t) => {
  const region = await withRegion(t);
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "alice");
  raw.send(2, {
    case: "createConversation",
    value: { kind: 1, memberIds: ["bob"], clientMsgId: "dm" },
  });
  const dm = await raw.answer(2);
  if (dm.kind.case !== "conversation") throw new Error("no conversation");
  const conversationId = dm.kind.value.id;

  const draft = { conversationId, clientMsgId: "retry-me", text: "only once" };
  raw.send(3, { case: "send", value: draft });
  raw.send(4, { case: "send", value: draft });
  raw.send(5, { case: "send", value: { ...draft, text: "a different text, same id" } });
  const answers = await Promise.all([raw.answer(3), raw.answer(4), raw.answer(5)]);
  const stored = answers.map((a) => (a.kind.case === "sendResult" ? a.kind.value : undefined));
  t.truthy(stored[0]);
  t.is(stored[0]?.seq, 1n);
  t.deepEqual(stored[1], stored[0], "the retry gets the original message");
  t.deepEqual(stored[2], stored[0], "the id decides, not the content");

  raw.send(6, { case: "send", value: { conversationId, clientMsgId: "barrier", text: "barrier" } });
  await raw.answer(6);
  await bobSaw.count(2, conversationId);
  t.deepEqual(bobSaw.texts(conversationId), ["only once", "barrier"]);
});

test("the SDK retries unacknowledged sends across reconnections without duplicating them", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");

  const sends: Array<Promise<unknown>> = [];
  for (let i = 0; i < 10; i++) {
    sends.push(alice.send(dm.id, `msg ${i}`));
    // Drop alice's socket right after the frame left: the send may or may not have landed.
    await operatorCall(region, "Disconnect", { userId: "alice" });
  }
  const acked = (await Promise.all(sends)) as Array<{ seq: bigint }>;
  t.deepEqual(
    acked.map((m) => m.seq),
    Array.from({ length: 10 }, (_, i) => BigInt(i + 1)),
    "each send stored once, in order",
  );
  await bobSaw.count(10, dm.id);
  t.deepEqual(
    bobSaw.texts(dm.id),
    Array.from({ length: 10 }, (_, i) => `msg ${i}`),
  );
});
