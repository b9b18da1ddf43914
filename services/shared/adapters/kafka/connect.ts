import { GetBootstrapBrokersCommand, KafkaClient } from "@aws-sdk/client-kafka";
import type { AwsCredentialIdentityProvider } from "@aws-sdk/types";
import {
  generateAuthToken,
  generateAuthTokenFromCredentialsProvider,
} from "aws-msk-iam-sasl-signer-js";
import type { KafkaConfig } from "kafkajs";

/** KafkaConnection says how to reach the region's Kafka (Amazon MSK in production). */
export interface KafkaConnection {
  /** brokers are bootstrap addresses; when empty they are resolved from clusterArn. */
  brokers: string[];
  /** clusterArn names an MSK cluster (AWS::MSK::Cluster exposes no bootstrap attribute). */
  clusterArn?: string;
  /** tls encrypts connections (MSK's TLS and IAM listeners require it). */
  tls: boolean;
  /** sasl "aws-msk-iam" authenticates with the task's IAM role (MSK IAM access control). */
  sasl: "none" | "aws-msk-iam";
  clientId: string;
}

/**
 * kafkaConfigFor turns a connection into kafkajs settings: brokers (resolved with MSK's
 * GetBootstrapBrokers when only the cluster ARN is known, picking the listener that matches
 * the auth and TLS settings), TLS, and SASL OAUTHBEARER with MSK IAM tokens signed from the
 * default AWS credential chain (the ECS task role), refreshed by kafkajs on every connection.
 */
export async function kafkaConfigFor(
  c: KafkaConnection,
  opts: { credentials?: AwsCredentialIdentityProvider; kafkaClient?: KafkaClient } = {},
): Promise<KafkaConfig> {
  const region = c.clusterArn ? regionOfArn(c.clusterArn) : process.env.AWS_REGION;
  let brokers = c.brokers;
  if (brokers.length === 0) {
    if (!c.clusterArn) throw new Error("KAFKA_BROKERS or KAFKA_CLUSTER_ARN is required");
    brokers = await bootstrapBrokers(c, opts.kafkaClient ?? new KafkaClient({ region }));
  }
  const config: KafkaConfig = { clientId: c.clientId, brokers, ssl: c.tls };
  if (c.sasl === "aws-msk-iam") {
    if (!region) throw new Error("AWS_REGION (or a cluster ARN) is required for MSK IAM auth");
    const credentials = opts.credentials;
    config.sasl = {
      mechanism: "oauthbearer",
      oauthBearerProvider: async () => {
        const { token } = credentials
          ? await generateAuthTokenFromCredentialsProvider({
              region,
              awsCredentialsProvider: credentials,
            })
          : await generateAuthToken({ region });
        return { value: token };
      },
    };
  }
  return config;
}

async function bootstrapBrokers(c: KafkaConnection, client: KafkaClient): Promise<string[]> {
  const res = await client.send(new GetBootstrapBrokersCommand({ ClusterArn: c.clusterArn }));
  const list =
    c.sasl === "aws-msk-iam"
      ? res.BootstrapBrokerStringSaslIam
      : c.tls
        ? res.BootstrapBrokerStringTls
        : res.BootstrapBrokerString;
  if (!list) {
    throw new Error(
      `MSK cluster ${c.clusterArn} has no ${c.sasl === "aws-msk-iam" ? "IAM" : c.tls ? "TLS" : "plaintext"} listener`,
    );
  }
  return list.split(",");
}

function regionOfArn(arn: string): string {
  const region = arn.split(":")[3];
  if (!region) throw new Error(`not an ARN: ${arn}`);
  return region;
}
