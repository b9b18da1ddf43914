import test from "ava";
import { ChatClient } from "../../client/index.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { connect, operatorCall, withRegion } from "../support/region.ts";

test("messages for an offline user are delivered when a device connects, each once", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  for (let i = 0; i < 25; i++) await alice.send(dm.id, `while you were out ${i}`);

  const bob = new ChatClient({
    url: region.wsUrl,
    token: () => region.token("bob"),
    deviceId: "phone",
  });
  t.teardown(() => bob.close());
  const bobSaw = new MessageRecorder(bob);
  const synced = bob.once("synced");
  await bob.connect();
  await synced;
  await bobSaw.count(25, dm.id);
  t.deepEqual(
    bobSaw.texts(dm.id),
    Array.from({ length: 25 }, (_, i) => `while you were out ${i}`),
  );
  t.true(bobSaw.messages.every((m) => m.senderId === "alice"));
});

test("a device that reconnects resumes from its inbox position: no gap, no duplicate", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");
  await alice.send(dm.id, "one");
  await bobSaw.count(1);

  // Cut bob's connection from the server side; the SDK reconnects by itself.
  const reconnected = bob.once("connected");
  const [session] = region.gateway.connectionCount() > 0 ? [true] : [false];
  t.true(session);
  await operatorCall(region, "Disconnect", { userId: "bob", reason: "test" });
  for (const text of ["two", "three", "four"]) await alice.send(dm.id, text);
  await reconnected;
  await bobSaw.count(4);
  await alice.send(dm.id, "five");
  await bobSaw.count(5);
  t.deepEqual(bobSaw.texts(dm.id), ["one", "two", "three", "four", "five"]);
});

test("a device offline while the app restarts resumes from its persisted position", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  const { MemoryStateStore } = await import("../../client/state.ts");
  const state = new MemoryStateStore();
  const first = await connect(t, region, "bob", "phone", { state });
  const firstSaw = new MessageRecorder(first);
  await alice.send(dm.id, "before");
  await firstSaw.count(1);
  await first.close();

  await alice.send(dm.id, "after");
  const second = await connect(t, region, "bob", "phone", { state });
  const secondSaw = new MessageRecorder(second);
  await secondSaw.count(1);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(secondSaw.texts(), ["after"], "only what the previous run had not received");
});
