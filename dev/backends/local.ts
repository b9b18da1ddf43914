import { TOPICS, topicNames } from "../../services/shared/topics.ts";
import { startDynamoLocal } from "./dynamodb.ts";
import { startMockKafka } from "./kafka.ts";
import { startRedis } from "./redis.ts";

/** TABLE is the chat table's name on every local DynamoDB. */
const TABLE = "connect-chat";

/** LocalBackends are DynamoDB Local, redis-server and a mock Kafka, ready for a region. */
export interface LocalBackends {
  /** env selects the real adapters and points them at these backends. */
  readonly env: NodeJS.ProcessEnv;
  /** description says where each backend listens. */
  readonly description: string;
  /**
   * dynamo and kafka say where the table and the brokers are, for the replication stand-ins
   * (with `store: "memory"` no DynamoDB Local runs: dynamo.endpoint is empty).
   */
  readonly dynamo: { endpoint: string; table: string };
  readonly kafka: { brokers: string[] };
  /**
   * outage takes the backends away as a regional outage does: DynamoDB Local and redis-server
   * are SIGKILLed, the Kafka brokers stop answering. recover brings them back: the table from
   * disk (with `persistent`), Redis empty (sessions are ephemeral), Kafka with its log.
   */
  outage(): Promise<void>;
  recover(): Promise<void>;
  /** busDown makes the Kafka brokers stop answering (true) or answer again (false). */
  busDown(down: boolean): Promise<void>;
  /** brokerDown takes one Kafka broker (1..kafkaBrokers) away or brings it back. */
  brokerDown(id: number, down: boolean): Promise<void>;
  /** freeze stops every backend process (SIGSTOP: sockets open, nothing answers); thaw resumes. */
  freeze(frozen: boolean): void;
  stop(): Promise<void>;
}

/**
 * startLocalBackends starts the real local backends on free loopback ports, with the chat
 * table and every topic created (with `mirrorsOf`, also the topics mirrored from those
 * regions, named `<region>.<topic>`), and says how to configure services for them. With
 * `persistent`, DynamoDB Local keeps its data on disk, so it survives an outage; with
 * `kafkaBrokers`, the mock cluster has that many brokers and every topic a replica on each.
 * With `store: "memory"`, DynamoDB Local is not started and the services are configured with
 * the in-memory store (CHAT_STORE=memory): fine for a region whose one persistence process is
 * the only one to hold the store, and free of the emulator's limits (the benchmark).
 */
export async function startLocalBackends(
  opts: {
    persistent?: boolean;
    mirrorsOf?: readonly string[];
    kafkaBrokers?: number;
    store?: "dynamodb" | "memory";
  } = {},
): Promise<LocalBackends> {
  const brokers = opts.kafkaBrokers ?? 1;
  const withDynamo = (opts.store ?? "dynamodb") === "dynamodb";
  const [dynamo, redis, kafka] = await Promise.all([
    withDynamo ? startDynamoLocal({ persistent: opts.persistent }) : undefined,
    startRedis(),
    startMockKafka({ brokers }),
  ]);
  const stop = async () => {
    for (const b of [kafka, redis, dynamo]) await b?.stop().catch(() => undefined);
  };
  try {
    await dynamo?.createTable(TABLE);
    for (const t of Object.values(TOPICS)) {
      for (const name of topicNames(t, opts.mirrorsOf ?? [])) {
        await kafka.createTopic(name, 8, brokers);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const store: NodeJS.ProcessEnv = dynamo
    ? {
        CHAT_STORE: "dynamodb",
        DYNAMODB_ENDPOINT: dynamo.endpoint,
        DYNAMODB_TABLE: TABLE,
        AWS_REGION: "us-east-1",
      }
    : { CHAT_STORE: "memory" };
  return {
    env: {
      ...store,
      CHAT_REGISTRY: "redis",
      REDIS_URL: redis.url,
      CHAT_BUS: "kafka",
      KAFKA_BROKERS: kafka.brokers.join(","),
    },
    description: `${dynamo ? `dynamodb ${dynamo.endpoint}` : "store in memory"}, redis ${redis.url}, kafka ${kafka.brokers.join(",")}`,
    dynamo: { endpoint: dynamo?.endpoint ?? "", table: TABLE },
    kafka: { brokers: kafka.brokers },
    async outage() {
      await Promise.all([dynamo?.kill(), redis.kill(), kafka.down(-1)]);
    },
    async recover() {
      await Promise.all([dynamo?.start(), redis.start(), kafka.up(-1)]);
    },
    busDown: (down) => (down ? kafka.down(-1) : kafka.up(-1)),
    brokerDown: (id, down) => (down ? kafka.down(id) : kafka.up(id)),
    freeze(frozen) {
      const sig = frozen ? "SIGSTOP" : "SIGCONT";
      dynamo?.signal(sig);
      redis.signal(sig);
      kafka.signal(sig);
    },
    stop,
  };
}
