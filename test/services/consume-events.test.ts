import { create, toBinary } from "@bufbuild/protobuf";
import test from "ava";
import { InboxAppendedSchema } from "../../gen/chat/v1/events_pb.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import type { BusRecord } from "../../services/shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../services/shared/topics.ts";

const appended = (userId: string) =>
  toBinary(InboxAppendedSchema, create(InboxAppendedSchema, { userId }));

async function poisonCount(metrics: ReturnType<typeof createMetrics>): Promise<number> {
  const { values } = await metrics.consumed.get();
  return values.find((v) => v.labels.outcome === "poison")?.value ?? 0;
}

test("records held until due reach the handler in order at their time, undecoded before", async (t) => {
  const bus = new MemoryBus({ partitions: 1 });
  const metrics = createMetrics("t", { processMetrics: false });
  const seen: Array<{ userId: string; atMs: number }> = [];
  const start = Date.now();
  const sub = await consumeEvents({
    bus,
    topic: TOPICS.inboxAppended,
    groupId: "held",
    log: silentLogger,
    metrics,
    // The key says how long each record waits.
    dueAtMs: (r) => r.timestampMs + Number(r.key),
    handler: async (events) => {
      for (const e of events) seen.push({ userId: e.value.userId, atMs: Date.now() - start });
    },
  });
  await bus.publish(TOPICS.inboxAppended.name, [
    { key: "0", value: appended("now") },
    { key: "400", value: appended("later") },
    { key: "400", value: new Uint8Array([0xff, 0xff]) }, // undecodable
    { key: "0", value: appended("after-later") }, // due, but behind one that is not
  ]);
  await new Promise((r) => setTimeout(r, 200));
  t.deepEqual(
    seen.map((s) => s.userId),
    ["now"],
  );
  // The held records were not even decoded: the poison one is not counted yet.
  t.is(await poisonCount(metrics), 0);
  await new Promise((r) => setTimeout(r, 600));
  t.deepEqual(
    seen.map((s) => s.userId),
    ["now", "later", "after-later"],
  );
  t.true((seen[1]?.atMs ?? 0) >= 400);
  t.is(await poisonCount(metrics), 1);
  await sub.close();
  await bus.close();
});

/**
 * watchLooks consumes inbox.appended as the push scheduler does, holding records per `hold`, and
 * records the user ids of each look; sawAll resolves once `total` records were looked at.
 */
async function watchLooks(
  bus: MemoryBus,
  groupId: string,
  hold: { dueAtMs: (r: BusRecord) => number; holdGranularityMs: number },
  total: number,
) {
  const looks: string[][] = [];
  let done: () => void = () => {};
  const sawAll = new Promise<void>((resolve) => {
    done = resolve;
  });
  const sub = await consumeEvents({
    bus,
    topic: TOPICS.inboxAppended,
    groupId,
    log: silentLogger,
    metrics: createMetrics("t", { processMetrics: false }),
    ...hold,
    handler: async (events) => {
      looks.push(events.map((e) => e.value.userId));
      if (looks.flat().length === total) done();
    },
  });
  return { looks, sawAll, sub };
}

test("records due at once arriving a few at a time are looked at together, once per granularity", async (t) => {
  const bus = new MemoryBus({ partitions: 1 });
  const { looks, sawAll, sub } = await watchLooks(
    bus,
    "granular",
    { dueAtMs: (r) => r.timestampMs, holdGranularityMs: 300 },
    6,
  );
  const publish = (userId: string) =>
    bus.publish(TOPICS.inboxAppended.name, [{ key: userId, value: appended(userId) }]);
  await publish("u0");
  while (looks.length === 0) await new Promise((r) => setTimeout(r, 5));
  // Five more, one publish each, while the partition rests after its first look.
  for (let i = 1; i <= 5; i++) {
    await publish(`u${i}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await sawAll;
  t.deepEqual(looks, [["u0"], ["u1", "u2", "u3", "u4", "u5"]]);
  await sub.close();
  await bus.close();
});

test("a partition behind on records long due is consumed batch after batch, without resting", async (t) => {
  // Ten batches' worth, all due a minute ago: resting a granularity (here a minute) after each
  // batch would take ten minutes; a busy topic would fall behind for ever.
  const bus = new MemoryBus({ partitions: 1, maxBatch: 10 });
  const { looks, sawAll, sub } = await watchLooks(
    bus,
    "behind",
    { dueAtMs: (r) => r.timestampMs - 60_000, holdGranularityMs: 60_000 },
    100,
  );
  await bus.publish(
    TOPICS.inboxAppended.name,
    Array.from({ length: 100 }, (_, i) => ({ key: "u", value: appended(`u${i}`) })),
  );
  t.timeout(10_000, "the partition rested between batches of records long due");
  await sawAll;
  t.is(looks.flat().length, 100);
  await sub.close();
  await bus.close();
});
