import { TOPICS } from "../../services/shared/topics.ts";
import { startDynamoLocal } from "./dynamodb.ts";
import { startMockKafka } from "./kafka.ts";
import { startRedis } from "./redis.ts";

/** LocalBackends are DynamoDB Local, redis-server and a mock Kafka, ready for a region. */
export interface LocalBackends {
  /** env selects the real adapters and points them at these backends. */
  readonly env: NodeJS.ProcessEnv;
  /** description says where each backend listens. */
  readonly description: string;
  stop(): Promise<void>;
}

/**
 * startLocalBackends starts the real local backends on free loopback ports, with the chat
 * table and every topic created, and says how to configure services for them.
 */
export async function startLocalBackends(): Promise<LocalBackends> {
  const [dynamo, redis, kafka] = await Promise.all([
    startDynamoLocal(),
    startRedis(),
    startMockKafka({ brokers: 1 }),
  ]);
  const stop = async () => {
    for (const b of [kafka, redis, dynamo]) await b.stop().catch(() => undefined);
  };
  try {
    await dynamo.createTable("connect-chat");
    for (const t of Object.values(TOPICS)) await kafka.createTopic(t.name, 8);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    env: {
      CHAT_STORE: "dynamodb",
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      DYNAMODB_TABLE: "connect-chat",
      AWS_REGION: "us-east-1",
      CHAT_REGISTRY: "redis",
      REDIS_URL: redis.url,
      CHAT_BUS: "kafka",
      KAFKA_BROKERS: kafka.brokers.join(","),
    },
    description: `dynamodb ${dynamo.endpoint}, redis ${redis.url}, kafka ${kafka.brokers.join(",")}`,
    stop,
  };
}
