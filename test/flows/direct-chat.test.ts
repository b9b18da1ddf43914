import test from "ava";
import { ConversationKind } from "../../gen/chat/v1/types_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { connect, withRegion } from "../support/region.ts";

test("two users chat 1:1 and each sees the other's messages once, in order", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const aliceSaw = new MessageRecorder(alice);
  const bobSaw = new MessageRecorder(bob);

  const dm = await alice.createDirect("bob");
  t.is(dm.kind, ConversationKind.DIRECT);
  t.deepEqual(dm.memberIds, ["alice", "bob"]);
  t.is((await bob.createDirect("alice")).id, dm.id, "both users arrive at the same conversation");

  const first = await alice.send(dm.id, "hi bob");
  t.is(first.originRegion, region.region);
  t.is(first.seq, 1n);
  t.true(first.hlc > 0n);
  await bobSaw.count(1, dm.id);
  const reply = await bob.send(dm.id, "hi alice");
  t.is(reply.seq, 2n);
  t.true(reply.hlc > first.hlc, "a reply sorts after what its sender had seen");
  for (let i = 0; i < 5; i++) await alice.send(dm.id, `a${i}`);

  await bobSaw.count(7, dm.id);
  await aliceSaw.count(7, dm.id);
  const expected = ["hi bob", "hi alice", "a0", "a1", "a2", "a3", "a4"];
  t.deepEqual(bobSaw.texts(dm.id), expected);
  t.deepEqual(aliceSaw.texts(dm.id), expected, "the sender's own devices get its messages too");
  const history = await bob.history(dm.id);
  t.deepEqual(
    history.messages.map((m) => (m.content.case === "text" ? m.content.value : "")),
    expected,
  );
});
