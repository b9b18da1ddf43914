import test from "ava";
import { pino } from "pino";
import { type MockKafka, startMockKafka } from "../../dev/backends/kafka.ts";
import { requireLibrary, requireProgram } from "../../dev/backends/processes.ts";
import { KafkaBus } from "../../services/shared/adapters/kafka/kafka-bus.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { CONSUMERS_CHECK, watchConsumers } from "../../services/shared/consumer-health.ts";
import { ChatError, Code } from "../../services/shared/errors.ts";
import { createHealth } from "../../services/shared/health.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { busContract } from "./bus.suite.ts";

busContract("MemoryBus", async () => ({ bus: new MemoryBus(), topic: async (name) => name }));

const kafka = requireProgram("python3", "apt-get install python3");
const librdkafka = requireLibrary("librdkafka.so.1", "apt-get install librdkafka1");
let cluster: MockKafka | undefined;
if (kafka.available && librdkafka.available) {
  test.before(async () => {
    cluster = await startMockKafka({ brokers: 1 });
  });
  test.after.always(async () => {
    await cluster?.stop();
  });
  busContract(
    "KafkaBus",
    async () => ({
      bus: new KafkaBus(
        { clientId: "contract", brokers: cluster?.brokers ?? [] },
        { sessionTimeoutMs: 3_000, maxWaitMs: 100 },
        silentLogger,
      ),
      topic: async (name) => {
        await cluster?.createTopic(name, 4, 1);
        return name;
      },
    }),
    {
      outage: async () => {
        // Three brokers, every partition on all of them; broker 1 leads some partitions and
        // may coordinate the group.
        const own = await startMockKafka({ brokers: 3 });
        return {
          made: {
            bus: new KafkaBus(
              { clientId: "outage", brokers: own.brokers },
              { sessionTimeoutMs: 3_000, maxWaitMs: 100 },
              silentLogger,
            ),
            topic: async (name) => {
              await own.createTopic(name, 4, 3);
              return name;
            },
          },
          down: () => own.down(1),
          up: () => own.up(1),
          stop: () => own.stop(),
        };
      },
    },
  );
  test("KafkaBus: a consumer whose group sync fails with an error kafkajs gives up on starts again", async (t) => {
    const own = await startMockKafka({ brokers: 1 });
    const bus = new KafkaBus(
      { clientId: "crash", brokers: own.brokers },
      { sessionTimeoutMs: 3_000, maxWaitMs: 100 },
      silentLogger,
    );
    t.teardown(async () => {
      await bus.close();
      await own.stop();
    });
    await own.createTopic("crashy", 2);
    // SyncGroup (API key 14) answered with INVALID_REQUEST (42), as the mock broker sometimes
    // answers during rebalances: kafkajs counts it as not retriable and stops its consumer.
    await own.failNext(14, 42, 1);
    // Health watches the consumer the way a service process does.
    const health = createHealth([]);
    health.setServing(true);
    const seen = new Set<string>();
    const stopWatching = watchConsumers({
      bus,
      health,
      metrics: createMetrics("test", { processMetrics: false }),
      log: silentLogger,
      intervalMs: 20,
    });
    t.teardown(stopWatching);
    const got: string[] = [];
    await bus.subscribe({
      groupId: "crashy-group",
      topics: ["crashy"],
      fromBeginning: true,
      handler: async (batch) => {
        for (const r of batch) got.push(new TextDecoder().decode(r.value));
      },
    });
    await bus.publish("crashy", [{ key: "k", value: new TextEncoder().encode("still consumed") }]);
    const deadline = Date.now() + 30_000;
    while (got.length === 0 && Date.now() < deadline) {
      const failing = health.failing()[CONSUMERS_CHECK];
      if (failing) seen.add(failing.replace(/\d+ s ago/, "N s ago"));
      await new Promise((r) => setTimeout(r, 10));
    }
    t.deepEqual(got, ["still consumed"]);
    t.true(
      [...seen].some((f) => /^crashy-group crashed N s ago \(.+\); restarting$/.test(f)),
      `health failed while the consumer was down: ${[...seen].join(" | ")}`,
    );
    const [status] = bus.consumers();
    t.like(status, { groupId: "crashy-group", state: "consuming", restarts: 1 });
    t.deepEqual(status?.partitions, { crashy: [0, 1] });
    await new Promise((r) => setTimeout(r, 60));
    t.true(health.serving(), "health holds again once the consumer runs");
  });
  test("KafkaBus: a publish the brokers do not take within publishTimeoutMs fails as retryable UNAVAILABLE", async (t) => {
    const own = await startMockKafka({ brokers: 1 });
    const bus = new KafkaBus(
      { clientId: "slow", brokers: own.brokers },
      { sessionTimeoutMs: 3_000, maxWaitMs: 100, publishTimeoutMs: 500 },
      silentLogger,
    );
    t.teardown(async () => {
      await bus.close().catch(() => undefined);
      await own.stop();
    });
    await own.createTopic("slow", 1);
    await bus.publish("slow", [{ key: "k", value: new TextEncoder().encode("before") }]);
    await own.down(-1);
    const started = Date.now();
    const err = await t.throwsAsync(
      bus.publish("slow", [{ key: "k", value: new TextEncoder().encode("during") }]),
    );
    t.true(Date.now() - started < 5_000, "the caller hears within its own deadline");
    t.true(err instanceof ChatError);
    t.is((err as ChatError).code, Code.Unavailable);
    t.true((err as ChatError).retryable);
    t.regex(
      err?.message ?? "",
      /^bus unavailable: slow not acknowledged by the brokers within 500 ms/,
    );
    await own.up(-1);
    await t.notThrowsAsync(
      (async () => {
        for (let i = 0; ; i++) {
          try {
            return await bus.publish("slow", [
              { key: "k", value: new TextEncoder().encode("after") },
            ]);
          } catch (e) {
            if (i > 20) throw e;
          }
        }
      })(),
    );
  });

  test("KafkaBus: brokers away at the first publish do not break publishing for good", async (t) => {
    const own = await startMockKafka({ brokers: 1 });
    const bus = new KafkaBus(
      { clientId: "first", brokers: own.brokers },
      { sessionTimeoutMs: 3_000, maxWaitMs: 100, publishTimeoutMs: 1_000 },
      silentLogger,
    );
    t.teardown(async () => {
      await bus.close().catch(() => undefined);
      await own.stop();
    });
    await own.createTopic("first", 1);
    await own.down(-1);
    await t.throwsAsync(bus.publish("first", [{ key: "k", value: new TextEncoder().encode("x") }]));
    await own.up(-1);
    // The failed connect is not kept: a later publish connects again.
    let error: unknown;
    for (let i = 0; i < 30; i++) {
      try {
        await bus.publish("first", [{ key: "k", value: new TextEncoder().encode("y") }]);
        error = undefined;
        break;
      } catch (err) {
        error = err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    t.is(error, undefined, `publishing works again: ${String(error)}`);
  });

  test("KafkaBus: a closed bus does not start a crashed consumer again", async (t) => {
    const own = await startMockKafka({ brokers: 1 });
    t.teardown(() => own.stop());
    const crashes: string[] = [];
    const log = pino(
      { level: "error" },
      {
        write: (line: string) => {
          const { msg } = JSON.parse(line);
          if (msg.startsWith("bus consumer")) crashes.push(msg);
        },
      },
    );
    const bus = new KafkaBus(
      { clientId: "closing", brokers: own.brokers },
      { sessionTimeoutMs: 3_000, maxWaitMs: 100 },
      log,
    );
    await own.createTopic("closing", 1);
    // Two refused group syncs: a consumer started again after the close would crash again.
    await own.failNext(14, 42, 2);
    await bus.subscribe({ groupId: "closing-group", topics: ["closing"], handler: async () => {} });
    const deadline = Date.now() + 30_000;
    while (crashes.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    t.deepEqual(crashes, ["bus consumer crashed; starting it again"]);
    // Closed within the restart delay (500 ms): nothing may start again, or the process never
    // exits (a consumer retrying a broker that is gone keeps it alive).
    await bus.close();
    await new Promise((r) => setTimeout(r, 3_000));
    t.deepEqual(crashes, ["bus consumer crashed; starting it again"]);
  });
} else {
  test.skip(`KafkaBus: ${kafka.why || librdkafka.why}`, () => {});
}
