import test from "ava";
import { ConversationKind, MembershipAction } from "../../gen/chat/v1/types_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { connect, withRegion } from "../support/region.ts";

test("a group of five, one member on three devices: every device sees every message once", async (t) => {
  const region = await withRegion(t);
  const users = ["ann", "ben", "cat", "dan", "eve"];
  const devices = [
    ...users.map((u) => ({ user: u, device: "phone" })),
    { user: "eve", device: "laptop" },
    { user: "eve", device: "tablet" },
  ];
  const clients = await Promise.all(devices.map((d) => connect(t, region, d.user, d.device)));
  const seen = clients.map((c) => new MessageRecorder(c));
  const [ann] = clients;
  if (!ann) throw new Error("unreachable");

  const group = await ann.createGroup("book club", ["ben", "cat", "dan", "eve"]);
  t.is(group.kind, ConversationKind.GROUP);
  t.is(group.title, "book club");
  t.deepEqual(group.memberIds, [...users].sort());

  // Everyone sends concurrently; every device must converge on the same sequence.
  const sends = clients
    .slice(0, 5)
    .flatMap((c, i) => [0, 1, 2].map((n) => c.send(group.id, `${users[i]}-${n}`)));
  const acked = await Promise.all(sends);
  t.deepEqual(
    acked.map((m) => m.seq).sort((a, b) => Number(a - b)),
    Array.from({ length: 15 }, (_, i) => BigInt(i + 2)),
    "seqs are dense after the creation message (seq 1)",
  );
  await Promise.all(seen.map((s) => s.count(15, group.id)));
  const order = seen[0]?.messages.filter((m) => m.conversationId === group.id).map((m) => m.seq);
  t.deepEqual(
    order,
    Array.from({ length: 16 }, (_, i) => BigInt(i + 1)),
    "in seq order, creation first",
  );
  for (const [i, s] of seen.entries()) {
    const mine = s.messages.filter((m) => m.conversationId === group.id);
    t.is(mine.length, 16, `${devices[i]?.user}/${devices[i]?.device} saw each message once`);
    t.deepEqual(
      mine.map((m) => m.seq),
      order,
    );
  }
  const created = seen[6]?.messages[0];
  t.is(created?.content.case, "membership");
  if (created?.content.case === "membership") {
    t.is(created.content.value.action, MembershipAction.CREATED);
  }
});

test("members are added and removed; a removed member hears of it and nothing after", async (t) => {
  const region = await withRegion(t);
  const ann = await connect(t, region, "ann");
  const ben = await connect(t, region, "ben");
  const cat = await connect(t, region, "cat");
  const annSaw = new MessageRecorder(ann);
  const benSaw = new MessageRecorder(ben);
  const catSaw = new MessageRecorder(cat);

  const group = await ann.createGroup("trio", ["ben"]);
  const added = await ben.addMembers(group.id, ["cat"]);
  t.deepEqual(added.memberIds, ["ann", "ben", "cat"]);
  await ann.send(group.id, "welcome cat");
  await catSaw.count(1, group.id);
  t.deepEqual(
    (await cat.listConversations()).conversations.map((c) => c.id),
    [group.id],
  );

  const ben2 = await ben.removeMembers(group.id, ["cat"]).catch((e: Error) => e);
  t.true(ben2 instanceof Error && /only the group's creator/.test(ben2.message));
  const removed = await ann.removeMembers(group.id, ["cat"]);
  t.deepEqual(removed.memberIds, ["ann", "ben"]);
  await catSaw.until(
    (ms) =>
      ms.some(
        (m) =>
          m.content.case === "membership" && m.content.value.action === MembershipAction.REMOVED,
      ),
    5_000,
    "cat's removal notice",
  );
  await ann.send(group.id, "cat is gone");
  await benSaw.count(2, group.id);
  await annSaw.count(2, group.id);
  t.deepEqual(catSaw.texts(group.id), ["welcome cat"], "nothing reaches a removed member");
  t.deepEqual((await cat.listConversations()).conversations, []);
  const err = await cat.send(group.id, "let me back").catch((e: Error) => e);
  t.true(err instanceof Error && /not a member/.test(err.message));

  const left = await ben.leave(group.id);
  t.deepEqual(left.memberIds, ["ann"]);
});
