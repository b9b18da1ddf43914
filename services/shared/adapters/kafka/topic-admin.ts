import type { Admin } from "kafkajs";
import type { Logger } from "../../logger.ts";

/** TopicPlan is what topics a region needs and how they are laid out. */
export interface TopicPlan {
  names: string[];
  partitions: number;
  /**
   * replication is each partition's copies; unset, it is derived from the cluster: as many as
   * it has brokers, up to DEFAULT_REPLICATION.
   */
  replication?: number;
}

/** DEFAULT_REPLICATION is the replication factor on a cluster of three or more brokers. */
export const DEFAULT_REPLICATION = 3;

/** TopicReport is what ensureTopics found and did. */
export interface TopicReport {
  brokers: number;
  replication: number;
  /** minInsyncReplicas is set on the topics it created: a write is acked by this many copies. */
  minInsyncReplicas: number;
  created: string[];
  existing: string[];
  /** mismatched are existing topics laid out differently from the plan (left as they are). */
  mismatched: Array<{ topic: string; partitions: number; replication: number }>;
}

/**
 * replicationFor picks the replication factor for a cluster of `brokers` brokers, or checks the
 * one asked for: a factor above the broker count would make every topic creation fail (and
 * services that create topics crash-loop), so it is refused here with the numbers.
 */
export function replicationFor(brokers: number, asked?: number): number {
  if (brokers < 1) throw new Error("the Kafka cluster reports no brokers");
  if (asked === undefined) return Math.min(DEFAULT_REPLICATION, brokers);
  if (asked > brokers) {
    throw new Error(
      `KAFKA_REPLICATION is ${asked} but the cluster has ${brokers} broker${brokers === 1 ? "" : "s"}: a topic cannot have more copies than brokers`,
    );
  }
  return asked;
}

/**
 * ensureTopics creates the plan's missing topics, with the replication factor derived from (or
 * checked against) the cluster and min.insync.replicas one below it (at least 1), so that with
 * acks=all a write survives the loss of a broker and one broker may be down without stopping
 * writes. Existing topics are not altered; those laid out differently are reported.
 */
export async function ensureTopics(
  admin: Admin,
  plan: TopicPlan,
  log: Logger,
): Promise<TopicReport> {
  const { brokers } = await admin.describeCluster();
  const replication = replicationFor(brokers.length, plan.replication);
  const minInsyncReplicas = Math.max(1, replication - 1);
  const present = new Set(await admin.listTopics());
  const missing = plan.names.filter((n) => !present.has(n));
  const existing = plan.names.filter((n) => present.has(n));
  if (missing.length > 0) {
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: plan.partitions,
        replicationFactor: replication,
        configEntries: [{ name: "min.insync.replicas", value: String(minInsyncReplicas) }],
      })),
    });
    log.info({ topics: missing, replication, partitions: plan.partitions }, "created topics");
  }
  const mismatched: TopicReport["mismatched"] = [];
  if (existing.length > 0) {
    const { topics } = await admin.fetchTopicMetadata({ topics: existing });
    for (const t of topics) {
      const copies = Math.min(...t.partitions.map((p) => p.replicas.length));
      if (t.partitions.length !== plan.partitions || copies !== replication) {
        mismatched.push({ topic: t.name, partitions: t.partitions.length, replication: copies });
      }
    }
    if (mismatched.length > 0) {
      log.warn(
        { mismatched, partitions: plan.partitions, replication },
        "topics exist with another layout; left as they are",
      );
    }
  }
  return {
    brokers: brokers.length,
    replication,
    minInsyncReplicas,
    created: missing,
    existing,
    mismatched,
  };
}
