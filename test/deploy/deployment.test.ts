import test from "ava";
import { ALL_CHECKS, deploymentFiles, type Files, placeholder } from "./deployment-checks.ts";

const files = deploymentFiles();

for (const [name, check] of Object.entries(ALL_CHECKS)) {
  test(`deployment: ${name} finds nothing wrong`, (t) => {
    t.deepEqual(check(files), []);
  });
}

/** mutate returns the files with one replacement made, failing if the text is not there. */
function mutate(path: string, from: string | RegExp, to: string): Files {
  const before = files.get(path);
  if (before === undefined) throw new Error(`${path}: no such file`);
  const after = before.replace(from, to);
  if (after === before) throw new Error(`${path}: ${from} not found (update the mutation)`);
  return new Map(files).set(path, after);
}

// Realistic defects, each of which a deploy would hit (or a reviewer would miss); each must be
// reported by the check named, with a message that says what is wrong.
const defects: Array<[string, keyof typeof ALL_CHECKS, Files, RegExp]> = [
  [
    "an apostrophe in a security group description",
    "checkSecurityGroupText",
    mutate(
      "copilot/environments/addons/redis.yml",
      "GroupDescription: Redis - from the Connect Chat services only",
      "GroupDescription: Redis, reachable from the environment's services only",
    ),
    /redis\.yml: RedisSecurityGroup: EC2 refuses the description/,
  ],
  [
    "two brokers (MSK Replicator needs three)",
    "checkKafkaSizing",
    mutate(
      "copilot/environments/addons/kafka.yml",
      "NumberOfBrokerNodes: 3",
      "NumberOfBrokerNodes: 2",
    ),
    /2 brokers; MSK Replicator needs at least 3/,
  ],
  [
    "a replication factor above the broker count",
    "checkKafkaSizing",
    mutate(
      "copilot/kafka-topics/manifest.yml",
      "KAFKA_TOPIC_PARTITIONS: 12",
      "KAFKA_TOPIC_PARTITIONS: 12\n  KAFKA_REPLICATION: 4",
    ),
    /KAFKA_REPLICATION 4 is above the cluster's 3 brokers/,
  ],
  [
    "an environment with two private subnets",
    "checkKafkaSizing",
    mutate(
      "copilot/environments/eu-west-1/manifest.yml",
      /\n {8}- cidr: 10\.20\.24\.0\/21\n {10}az: eu-west-1c/,
      "",
    ),
    /environments\/eu-west-1: 2 private subnets, the addons pass 3/,
  ],
  [
    "a service that creates topics again",
    "checkTopicCreation",
    mutate(
      "copilot/messaging/manifest.yml",
      "  CHAT_BUS: kafka\n",
      "  CHAT_BUS: kafka\n  KAFKA_CREATE_TOPICS: true\n",
    ),
    /messaging: creates topics/,
  ],
  [
    "a service role allowed to create topics",
    "checkTopicCreation",
    mutate(
      "copilot/notification/addons/kafka-access.yml",
      "              - kafka-cluster:DescribeTopic\n",
      "              - kafka-cluster:DescribeTopic\n              - kafka-cluster:CreateTopic\n",
    ),
    /notification: its task role may create topics/,
  ],
  [
    "the guide deploying services before the topics job",
    "checkTopicCreation",
    mutate(
      "docs/deploy.md",
      "### 4. The topics, before any service",
      "```sh\ncopilot svc deploy --name messaging --env us-east-1\n```\n### 4. The topics, before any service",
    ),
    /the kafka-topics job must run before the first copilot svc deploy/,
  ],
  [
    "the gateway routed at / (operator API and metrics public)",
    "checkPublicPaths",
    mutate("copilot/gateway/manifest.yml", "  path: /ws\n", "  path: /\n"),
    /http\.path is \/; the public load balancer must route \/ws only/,
  ],
  [
    "the admin port left off the task definition",
    "checkPublicPaths",
    mutate(
      "copilot/gateway/manifest.yml",
      "      ContainerPort: 9080",
      "      ContainerPort: 9090",
    ),
    /ADMIN_PORT 9080 is not in the task definition/,
  ],
  [
    "a service with its own CHAT_PEER_REGIONS",
    "checkPeers",
    mutate(
      "copilot/notification/manifest.yml",
      "  PUSH_DELAY_MS: 10000\n",
      "  PUSH_DELAY_MS: 10000\n  CHAT_PEER_REGIONS: us-east-1\n",
    ),
    /notification: sets CHAT_PEER_REGIONS itself/,
  ],
  [
    "identical topic names across regions (a replication loop)",
    "checkPeers",
    mutate("deploy/replicator.yml", "Type: PREFIXED_WITH_SOURCE_CLUSTER_ALIAS", "Type: IDENTICAL"),
    /copies must be prefixed with the source cluster's alias/,
  ],
  [
    "a mirrored topic the replicator does not copy",
    "checkPeers",
    mutate("deploy/replicator.yml", "              - presence\\.lease\n", ""),
    /replicates .* the services mirror/,
  ],
  [
    "an environment without its certificate",
    "checkTlsAndDns",
    mutate(
      "copilot/environments/us-east-1/manifest.yml",
      /http:\n {2}public:\n {4}certificates:\n {6}- \$\{CHAT_CERTIFICATE_ARN\}\n/,
      "",
    ),
    /environments\/us-east-1: no certificate/,
  ],
  [
    "a shell variable nobody exports",
    "checkTlsAndDns",
    mutate(
      "copilot/gateway/manifest.yml",
      `    - ${placeholder("CHAT_DOMAIN")}\n`,
      `    - ${placeholder("CHAT_DOMAN")}\n`,
    ),
    /\$\{CHAT_DOMAN\} is not exported by scripts\/deploy-env\.sh/,
  ],
  [
    "the latency record on target health only",
    "checkTlsAndDns",
    mutate("copilot/gateway/addons/route53.yml", "      HealthCheckId: !Ref HealthCheck\n", ""),
    /must fail over on an explicit health check/,
  ],
  [
    "a health check on a path the gateway does not serve",
    "checkTlsAndDns",
    mutate("copilot/gateway/addons/route53.yml", "ResourcePath: /healthz", "ResourcePath: /health"),
    /the health check reads \/health, the gateway's is \/healthz/,
  ],
  [
    "a service in public subnets",
    "checkPlacement",
    mutate("copilot/persistence/manifest.yml", "    placement: private", "    placement: public"),
    /persistence: not in private subnets/,
  ],
  [
    "an SSM parameter nobody writes",
    "checkParameterStore",
    mutate(
      "copilot/gateway/addons/route53.yml",
      "Default: /connect-chat/dns/hosted-zone-id",
      "Default: /connect-chat/dns/zone-id",
    ),
    /nothing writes the SSM parameter \/connect-chat\/dns\/zone-id/,
  ],
  [
    "backups taken in a region without the table",
    "checkRegionMaps",
    mutate(
      "copilot/environments/addons/backup.yml",
      /Primary:\n {6}Env: us-east-1/,
      "Primary:\n      Env: eu-west-1",
    ),
    /backup\.yml: backs up the table in eu-west-1; dynamodb\.yml creates it in us-east-1/,
  ],
  [
    "an environment without a table replica",
    "checkRegionMaps",
    mutate(
      "copilot/environments/addons/dynamodb.yml",
      /\n {8}- Region: eu-west-1\n(.*\n){3}/,
      "\n",
    ),
    /dynamodb\.yml: replicas in us-east-1, environments eu-west-1, us-east-1/,
  ],
];

for (const [what, check, mutated, expected] of defects) {
  test(`deployment: ${check} catches ${what}`, (t) => {
    const problems = ALL_CHECKS[check](mutated);
    t.true(
      problems.some((p) => expected.test(p)),
      `${what}: ${JSON.stringify(problems)}`,
    );
  });
}
