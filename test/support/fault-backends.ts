import { type DynamoLocal, startDynamoLocal } from "../../dev/backends/dynamodb.ts";
import { type MockKafka, startMockKafka } from "../../dev/backends/kafka.ts";
import { type RedisServer, startRedis } from "../../dev/backends/redis.ts";
import { TOPICS, topicNames } from "../../services/shared/topics.ts";

/**
 * FaultBackends are the real local backends of one region, each of which a test can take away
 * and bring back on its own: DynamoDB Local (on disk, so a killed server keeps its table),
 * redis-server and the mock Kafka. (dev/backends/local.ts takes them away only all together.)
 */
export interface FaultBackends {
  readonly dynamo: DynamoLocal;
  readonly redis: RedisServer;
  readonly kafka: MockKafka;
  /** env selects the real adapters and points them at these backends. */
  readonly env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export const FAULT_TABLE = "connect-chat";

/** startFaultBackends starts the three backends with the chat table and every topic. */
export async function startFaultBackends(): Promise<FaultBackends> {
  const [dynamo, redis, kafka] = await Promise.all([
    startDynamoLocal({ persistent: true }),
    startRedis(),
    startMockKafka({ brokers: 1 }),
  ]);
  const stop = async () => {
    for (const b of [kafka, redis, dynamo]) await b.stop().catch(() => undefined);
  };
  try {
    await dynamo.createTable(FAULT_TABLE);
    for (const t of Object.values(TOPICS)) {
      for (const name of topicNames(t, [])) await kafka.createTopic(name, 4, 1);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dynamo,
    redis,
    kafka,
    env: {
      CHAT_STORE: "dynamodb",
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      DYNAMODB_TABLE: FAULT_TABLE,
      AWS_REGION: "us-east-1",
      CHAT_REGISTRY: "redis",
      REDIS_URL: redis.url,
      CHAT_BUS: "kafka",
      KAFKA_BROKERS: kafka.brokers.join(","),
    },
    stop,
  };
}
