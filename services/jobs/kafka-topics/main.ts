// The kafka-topics job: creates a region's Kafka topics once, before any service starts, so
// that no service races another to create them or starts on a topic that does not exist (the
// services never create topics in a deployment). The deployment runs it with
// `copilot job run --name kafka-topics --env <region>` (docs/deploy.md), and again whenever
// CHAT_PEER_REGIONS or the topics change: it only adds what is missing.
//
// It creates this region's topics and the copies of other regions' topics (named
// `<source alias>.<topic>`, CHAT_PEER_REGIONS), with the replication factor derived from the
// cluster (KAFKA_REPLICATION to choose it; refused above the broker count). It exits 0 when
// every topic exists, 1 with the reason otherwise.
import { Kafka, logLevel } from "kafkajs";
import { kafkaConfigFor } from "../../shared/adapters/kafka/connect.ts";
import { ensureTopics } from "../../shared/adapters/kafka/topic-admin.ts";
import { loadKafkaTopicsConfig } from "../../shared/config.ts";
import { createLogger } from "../../shared/logger.ts";
import { allTopicNames } from "../../shared/topics.ts";

let log = createLogger({ service: "kafka-topics", region: process.env.CHAT_REGION ?? "?" });
try {
  const config = loadKafkaTopicsConfig();
  log = createLogger({ service: "kafka-topics", region: config.region, level: config.logLevel });
  const kafka = new Kafka({ ...(await kafkaConfigFor(config.bus)), logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const report = await ensureTopics(
      admin,
      {
        names: allTopicNames(config.mirrors),
        partitions: config.partitions,
        replication: config.replication,
      },
      log,
    );
    log.info(report, "topics ready");
  } finally {
    await admin.disconnect();
  }
} catch (err) {
  log.error({ err }, "could not create the topics");
  process.exitCode = 1;
}
