import test from "ava";
import { type MockKafka, startMockKafka } from "../../dev/backends/kafka.ts";
import { requireLibrary, requireProgram } from "../../dev/backends/processes.ts";
import { KafkaBus } from "../../services/shared/adapters/kafka/kafka-bus.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { silentLogger } from "../../services/shared/logger.ts";
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
} else {
  test.skip(`KafkaBus: ${kafka.why || librdkafka.why}`, () => {});
}
