// A benchmark target: a whole Connect Chat region in this process (`npm start`'s layout: each
// service on its own port, gRPC between them over loopback), on the embedded backends or, with
// `real`, on DynamoDB Local, redis-server and librdkafka's mock Kafka started here.
import { startDynamoLocal } from "../../dev/backends/dynamodb.ts";
import { startMockKafka } from "../../dev/backends/kafka.ts";
import { startRedis } from "../../dev/backends/redis.ts";
import { startLocalRegion } from "../../services/region/region.ts";
import { TOPICS } from "../../services/shared/topics.ts";
import { runTarget } from "./harness.ts";

const backends = process.argv[2] === "real" ? "real" : "embedded";

await runTarget(async () => {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CHAT_REGION: "bench",
    LOG_LEVEL: "warn",
  };
  const stops: Array<() => Promise<void>> = [];
  if (backends === "real") {
    const [dynamo, redis, kafka] = await Promise.all([
      startDynamoLocal(),
      startRedis(),
      startMockKafka({ brokers: 1 }),
    ]);
    stops.push(
      () => dynamo.stop(),
      () => redis.stop(),
      () => kafka.stop(),
    );
    await dynamo.createTable("connect-chat");
    for (const t of Object.values(TOPICS)) await kafka.createTopic(t.name, 8);
    Object.assign(env, {
      CHAT_STORE: "dynamodb",
      DYNAMODB_ENDPOINT: dynamo.endpoint,
      DYNAMODB_TABLE: "connect-chat",
      AWS_REGION: "us-east-1",
      CHAT_REGISTRY: "redis",
      REDIS_URL: redis.url,
      CHAT_BUS: "kafka",
      KAFKA_BROKERS: kafka.brokers.join(","),
      KAFKA_MAX_WAIT_MS: "20",
    });
  }
  const region = await startLocalRegion({ env });
  return {
    url: region.wsUrl,
    description:
      backends === "real"
        ? "Connect Chat, all four services in one process, on DynamoDB Local, redis-server and mock Kafka (child processes)"
        : "Connect Chat, all four services in one process (gRPC over loopback), embedded backends",
    tokens: (users) => Promise.all(users.map((u) => region.token(u))),
    async stop() {
      await region.stop();
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
    },
  };
});
