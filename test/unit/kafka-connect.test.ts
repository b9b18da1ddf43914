import type { KafkaClient } from "@aws-sdk/client-kafka";
import test from "ava";
import { kafkaConfigFor } from "../../services/shared/adapters/kafka/connect.ts";
import { loadMessagingConfig } from "../../services/shared/config.ts";

const arn =
  "arn:aws:kafka:eu-west-1:123456789012:cluster/chat/4f0b0c9e-1111-2222-3333-444455556666-2";

/** An MSK control plane that answers GetBootstrapBrokers like the real one does. */
const msk = {
  async send(cmd: { input: { ClusterArn: string } }) {
    if (cmd.input.ClusterArn !== arn) throw new Error("unknown cluster");
    return {
      BootstrapBrokerString: "b-1.plain:9092,b-2.plain:9092",
      BootstrapBrokerStringTls: "b-1.tls:9094,b-2.tls:9094",
      BootstrapBrokerStringSaslIam: "b-1.iam:9098,b-2.iam:9098",
    };
  },
} as unknown as KafkaClient;

test("with an MSK cluster ARN, services use TLS, IAM auth and the cluster's IAM listener", async (t) => {
  const config = loadMessagingConfig({
    CHAT_BUS: "kafka",
    KAFKA_CLUSTER_ARN: arn,
    CHAT_REGION: "eu-west-1",
  });
  const bus = config.backends.bus;
  if (bus.kind !== "kafka") return t.fail();
  t.like(bus, { tls: true, sasl: "aws-msk-iam", brokers: [], clientId: "connect-chat-messaging" });
  const kafka = await kafkaConfigFor(bus, {
    kafkaClient: msk,
    credentials: async () => ({ accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" }),
  });
  t.deepEqual(kafka.brokers, ["b-1.iam:9098", "b-2.iam:9098"]);
  t.true(kafka.ssl);
  const sasl = kafka.sasl as {
    mechanism: string;
    oauthBearerProvider: () => Promise<{ value: string }>;
  };
  t.is(sasl.mechanism, "oauthbearer");
  // The token is a SigV4-presigned kafka-cluster:Connect request for the cluster's region.
  const { value } = await sasl.oauthBearerProvider();
  const url = new URL(Buffer.from(value, "base64url").toString("utf8"));
  t.is(url.hostname, "kafka.eu-west-1.amazonaws.com");
  t.is(url.searchParams.get("Action"), "kafka-cluster:Connect");
  t.regex(
    url.searchParams.get("X-Amz-Credential") ?? "",
    /^AKIDEXAMPLE\/\d{8}\/eu-west-1\/kafka-cluster\/aws4_request$/,
  );
});

test("explicit brokers without TLS or SASL are used as given (local Kafka)", async (t) => {
  const config = loadMessagingConfig({
    CHAT_BUS: "kafka",
    KAFKA_BROKERS: "127.0.0.1:9092, 127.0.0.1:9093",
  });
  const bus = config.backends.bus;
  if (bus.kind !== "kafka") return t.fail();
  const kafka = await kafkaConfigFor(bus);
  t.deepEqual(kafka.brokers, ["127.0.0.1:9092", "127.0.0.1:9093"]);
  t.false(kafka.ssl);
  t.is(kafka.sasl, undefined);
});

test("Kafka settings are validated", (t) => {
  t.throws(() => loadMessagingConfig({ CHAT_BUS: "kafka" }), {
    message: /KAFKA_BROKERS or KAFKA_CLUSTER_ARN: required/,
  });
  t.throws(() => loadMessagingConfig({ CHAT_BUS: "kafka", KAFKA_BROKERS: "no-port" }), {
    message: /KAFKA_BROKERS: must be host:port pairs/,
  });
  t.throws(
    () => loadMessagingConfig({ CHAT_BUS: "kafka", KAFKA_CLUSTER_ARN: "arn:aws:s3:::bucket" }),
    {
      message: /KAFKA_CLUSTER_ARN: must be an MSK cluster ARN/,
    },
  );
  t.throws(() => loadMessagingConfig({ CHAT_REGISTRY: "redis" }), {
    message: /REDIS_URL: required/,
  });
  t.throws(() => loadMessagingConfig({ KAFKA_TLS: "yes" }), {
    message: /KAFKA_TLS: must be true or false/,
  });
});
