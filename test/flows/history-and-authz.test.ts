import test from "ava";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { connect, withRegion } from "../support/region.ts";

test("history pages backwards from any position", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  for (let i = 0; i < 120; i++) await alice.send(dm.id, `n${i}`);
  const texts = (ms: { content: { case?: string; value?: unknown } }[]) =>
    ms.map((m) => (m.content.case === "text" ? (m.content.value as string) : ""));

  const newest = await alice.history(dm.id, { limit: 50 });
  t.true(newest.hasMore);
  t.deepEqual(
    texts(newest.messages),
    Array.from({ length: 50 }, (_, i) => `n${i + 70}`),
  );
  const first = newest.messages[0];
  const older = await alice.history(dm.id, {
    limit: 50,
    before: {
      hlc: first?.hlc ?? 0n,
      originRegion: first?.originRegion ?? "",
      seq: first?.seq ?? 0n,
    },
  });
  t.deepEqual(
    texts(older.messages),
    Array.from({ length: 50 }, (_, i) => `n${i + 20}`),
  );
  const o = older.messages[0];
  const oldest = await alice.history(dm.id, { limit: 50, before: o });
  t.false(oldest.hasMore);
  t.deepEqual(
    texts(oldest.messages),
    Array.from({ length: 20 }, (_, i) => `n${i}`),
  );
  const page = await alice.listConversations({ limit: 10 });
  t.deepEqual(
    page.conversations.map((c) => c.id),
    [dm.id],
  );
});

test("only members can read, write or see receipts of a conversation", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const mallory = await connect(t, region, "mallory");
  const malloryAny = new MessageRecorder(mallory);
  const group = await alice.createGroup("private", ["bob"]);
  await alice.send(group.id, "secret");

  const denied = async (what: string, p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: Error) => e,
    );
    t.true(
      err instanceof Error && /PERMISSION_DENIED.*not a member/.test(err.message),
      `${what}: ${err}`,
    );
  };
  await denied("send", mallory.send(group.id, "let me in"));
  await denied("history", mallory.history(group.id));
  await denied("receipts", mallory.receipts(group.id));
  await denied("read receipt", mallory.markRead(group.id, new Map([[region.region, 1n]])));
  await denied("get", mallory.getConversation(group.id));
  await denied("add", mallory.addMembers(group.id, ["mallory"]));
  await denied("typing", mallory.setTyping(group.id, true));
  await denied("unknown conversation", mallory.history("g_doesnotexist"));
  t.deepEqual(malloryAny.messages, []);
  t.deepEqual((await mallory.listConversations()).conversations, []);
});
