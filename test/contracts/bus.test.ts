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
    cluster = await startMockKafka({ brokers: 3 });
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
        await cluster?.createTopic(name, 4, 3);
        return name;
      },
    }),
    {
      broker: {
        // Broker 1 leads some partitions (and may coordinate the group).
        down: async () => cluster?.down(1),
        up: async () => cluster?.up(1),
      },
    },
  );
} else {
  test.skip(`KafkaBus: ${kafka.why || librdkafka.why}`, () => {});
}
