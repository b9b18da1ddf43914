import test from "ava";
import { type MockKafka, startMockKafka } from "../../dev/backends/kafka.ts";
import { requireLibrary, requireProgram } from "../../dev/backends/processes.ts";
import { mirrorTopics } from "../../dev/replication/topic-mirror.ts";
import { KafkaBus } from "../../services/shared/adapters/kafka/kafka-bus.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import type { Bus, BusRecord } from "../../services/shared/ports/bus.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
let counter = 0;
const uid = (p: string) => `${p}-${process.pid}-${++counter}`;

/** TwoBuses are two regions' buses; `topics` creates topics on both (Kafka needs them made). */
type TwoBuses = () => Promise<{
  a: Bus;
  b: Bus;
  topics(names: string[]): Promise<void>;
  dispose(): Promise<void>;
}>;

/** collect subscribes to a topic and gathers what arrives. */
async function collect(t: { teardown: (f: () => Promise<void>) => void }, bus: Bus, topic: string) {
  const got: BusRecord[] = [];
  const sub = await bus.subscribe({
    groupId: uid("reader"),
    topics: [topic],
    fromBeginning: true,
    handler: async (batch) => {
      got.push(...batch);
    },
  });
  t.teardown(() => sub.close());
  return {
    got,
    values: () => got.map((r) => dec.decode(r.value)),
    async until(n: number, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (got.length < n) {
        if (Date.now() > deadline) throw new Error(`${topic}: ${got.length} of ${n} records`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

function mirrorContract(name: string, factory: TwoBuses, opts: { serial?: boolean } = {}) {
  // Consumer groups joining one mock cluster at once slow each other down: Kafka runs in turn.
  const test_ = opts.serial ? test.serial : test;
  const setup = async (t: { teardown: (f: () => Promise<void>) => void }) => {
    const two = await factory();
    t.teardown(() => two.dispose());
    return two;
  };

  test_(
    `${name}: a region's topic appears in the other as <alias>.<topic>, in order, without loops`,
    async (t) => {
      const { a, b, topics } = await setup(t);
      const topic = uid("events");
      await topics([topic, `us-east-1.${topic}`, `eu-west-1.${topic}`]);
      const ab = await mirrorTopics({
        from: { region: "us-east-1", bus: a },
        to: { region: "eu-west-1", bus: b },
        topics: [topic],
        options: { delayMs: 50 },
      });
      const ba = await mirrorTopics({
        from: { region: "eu-west-1", bus: b },
        to: { region: "us-east-1", bus: a },
        topics: [topic],
      });
      t.teardown(async () => {
        await Promise.all([ab.close(), ba.close()]);
      });
      const mirrored = await collect(t, b, `us-east-1.${topic}`);
      const backInA = await collect(t, a, `eu-west-1.${topic}`);
      for (let i = 0; i < 30; i++) {
        await a.publish(topic, [
          { key: `k${i % 3}`, value: enc.encode(`${i % 3}:${i}`), headers: { n: String(i) } },
        ]);
      }
      await mirrored.until(30);
      for (const k of ["0", "1", "2"]) {
        const seen = mirrored.values().filter((v) => v.startsWith(`${k}:`));
        t.deepEqual(
          seen,
          [...seen].sort((x, y) => Number(x.split(":")[1]) - Number(y.split(":")[1])),
          `key ${k} keeps its order`,
        );
      }
      // Keys land on different partitions, so they arrive in any order between them.
      t.deepEqual([...new Set(mirrored.got.map((r) => r.key))].sort(), ["k0", "k1", "k2"]);
      t.true(
        mirrored.got.every((r) => r.headers?.n === dec.decode(r.value).split(":")[1]),
        "headers (the trace context) go along",
      );
      await Promise.all([ab.drained(), ba.drained()]);
      t.is(backInA.got.length, 0, "records mirrored into b are not mirrored back into a");
      t.is(ab.lag().applied, 30);
    },
  );

  test_(
    `${name}: a paused mirror holds records back and reports them; resumed, it delivers them`,
    async (t) => {
      const { a, b, topics } = await setup(t);
      const topic = uid("paused");
      await topics([topic, `us-east-1.${topic}`]);
      const ab = await mirrorTopics({
        from: { region: "us-east-1", bus: a },
        to: { region: "eu-west-1", bus: b },
        topics: [topic],
      });
      t.teardown(() => ab.close());
      const mirrored = await collect(t, b, `us-east-1.${topic}`);
      ab.pause();
      await a.publish(
        topic,
        [1, 2, 3].map((i) => ({ key: "k", value: enc.encode(`${i}`) })),
      );
      const deadline = Date.now() + 20_000;
      while (ab.lag().pending < 3 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      t.is(ab.lag().pending, 3, "the held records are reported");
      t.is(mirrored.got.length, 0);
      ab.resume();
      await mirrored.until(3);
      t.deepEqual(mirrored.values(), ["1", "2", "3"]);
      await ab.drained();
      t.is(ab.lag().pending, 0);
    },
  );

  test_(`${name}: records the target could not take come again (at least once)`, async (t) => {
    const { a, b, topics } = await setup(t);
    const topic = uid("flaky");
    await topics([topic, `us-east-1.${topic}`]);
    let refusals = 2;
    const flaky: Bus = {
      publish: async (name, records) => {
        if (refusals-- > 0) throw new Error("target region unreachable");
        await b.publish(name, records);
      },
      subscribe: (o) => b.subscribe(o),
      consumers: () => b.consumers(),
      close: () => b.close(),
    };
    const errors: Error[] = [];
    const ab = await mirrorTopics({
      from: { region: "us-east-1", bus: a },
      to: { region: "eu-west-1", bus: flaky },
      topics: [topic],
      options: { onError: (e) => errors.push(e) },
    });
    t.teardown(() => ab.close());
    const mirrored = await collect(t, b, `us-east-1.${topic}`);
    await a.publish(topic, [{ key: "k", value: enc.encode("survivor") }]);
    await mirrored.until(1);
    t.deepEqual(mirrored.values(), ["survivor"]);
    t.is(errors.length, 1, "a target that stays down is reported once, not at every retry");
    t.is(errors[0]?.name, "ReplicationRetry", "a refused batch is retried, not a failure");
    t.regex(errors[0]?.message ?? "", /target region unreachable/);
  });
}

mirrorContract("MemoryBus", async () => {
  const a = new MemoryBus();
  const b = new MemoryBus();
  return {
    a,
    b,
    topics: async () => {},
    dispose: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
});

const python = requireProgram("python3", "apt-get install python3");
const librdkafka = requireLibrary("librdkafka.so.1", "apt-get install librdkafka1");
if (python.available && librdkafka.available) {
  let clusters: [MockKafka, MockKafka] | undefined;
  test.before(async () => {
    clusters = await Promise.all([startMockKafka(), startMockKafka()]);
  });
  test.after.always(async () => {
    await Promise.all(clusters?.map((c) => c.stop()) ?? []);
  });
  mirrorContract(
    "KafkaBus (two mock clusters)",
    async () => {
      const [ca, cb] = clusters as [MockKafka, MockKafka];
      const bus = (c: MockKafka) =>
        new KafkaBus(
          { clientId: uid("mirror"), brokers: c.brokers },
          { sessionTimeoutMs: 3_000, maxWaitMs: 100 },
          silentLogger,
        );
      const [a, b] = [bus(ca), bus(cb)];
      return {
        a,
        b,
        async topics(names) {
          for (const n of names) await Promise.all([ca.createTopic(n, 2), cb.createTopic(n, 2)]);
        },
        dispose: async () => {
          await Promise.all([a.close(), b.close()]);
        },
      };
    },
    { serial: true },
  );
} else {
  test.skip(`KafkaBus mirror: ${python.why || librdkafka.why}`, () => {});
}
