import test from "ava";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { connect, withRegion } from "../support/region.ts";

// The dual-write hole (DESIGN.md §4.2): a send is durable, then its publisher dies before
// message.stored is on the bus. These tests stop the publisher at exactly that point.

test("a send whose publisher died after persisting is still delivered (sweeper)", async (t) => {
  let crashes = 0;
  const region = await withRegion(t, {
    env: { SWEEP_INTERVAL_MS: "100", SWEEP_MIN_AGE_MS: "200" },
    hooks: {
      afterAppend: async (m) => {
        if (m.content.case === "text" && m.content.value === "doomed" && crashes++ === 0) {
          throw new Error("simulated crash between persist and publish");
        }
      },
    },
  });
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");

  const err = await alice.send(dm.id, "doomed").catch((e: Error) => e);
  t.true(err instanceof Error, "the sender was never acknowledged");
  await bobSaw.count(1, dm.id, 10_000);
  t.deepEqual(bobSaw.texts(dm.id), ["doomed"]);
  await alice.send(dm.id, "after");
  await bobSaw.count(2, dm.id);
  t.deepEqual(bobSaw.texts(dm.id), ["doomed", "after"], "once, and in order");
});

test("a later send routes the earlier unpublished one first, before the sweeper runs", async (t) => {
  let crashes = 0;
  const region = await withRegion(t, {
    env: { SWEEP_INTERVAL_MS: "3600000" },
    hooks: {
      afterAppend: async (m) => {
        if (m.content.case === "text" && m.content.value === "lost publish" && crashes++ === 0) {
          throw new Error("simulated crash between persist and publish");
        }
      },
    },
  });
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");
  await alice.send(dm.id, "lost publish").catch(() => undefined);
  await alice.send(dm.id, "next");
  await bobSaw.count(2, dm.id);
  t.deepEqual(bobSaw.texts(dm.id), ["lost publish", "next"]);
});

test("a client retry after the crash publishes the stored message; it arrives once", async (t) => {
  let crashes = 0;
  const region = await withRegion(t, {
    env: { SWEEP_INTERVAL_MS: "3600000" },
    hooks: {
      afterAppend: async () => {
        if (crashes++ === 0) throw new Error("simulated crash between persist and publish");
      },
    },
  });
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");
  await alice.send(dm.id, "retried", { clientMsgId: "same-id" }).catch(() => undefined);
  const again = await alice.send(dm.id, "retried", { clientMsgId: "same-id" });
  t.is(again.seq, 1n, "the retry found the stored message");
  await alice.send(dm.id, "barrier");
  await bobSaw.count(2, dm.id);
  t.deepEqual(bobSaw.texts(dm.id), ["retried", "barrier"]);
});
