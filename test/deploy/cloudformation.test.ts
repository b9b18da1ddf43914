import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import test from "ava";
import {
  chatTableDefinition,
  TTL_ATTRIBUTE,
} from "../../services/shared/adapters/dynamodb/table.ts";
import { TOPICS } from "../../services/shared/topics.ts";
import { validateTemplate } from "../support/cloudformation.ts";
import { ROOT } from "../support/tools.ts";
import {
  addonTemplates,
  COPILOT,
  COPILOT_ENV_EXPORTS,
  ENVIRONMENTS,
  envAddonExports,
  readTemplate,
  readYaml,
  SERVICES,
} from "./support.ts";

const imports = [...COPILOT_ENV_EXPORTS, ...envAddonExports()];
const addonDirs = [
  join(COPILOT, "environments/addons"),
  ...SERVICES.map((s) => join(COPILOT, s, "addons")),
];

test("every addon template is valid CloudFormation against the AWS resource specification", async (t) => {
  for (const dir of addonDirs) {
    for (const file of addonTemplates(dir)) {
      const errors = await validateTemplate(readFileSync(file, "utf8"), { imports });
      t.deepEqual(errors, [], relative(ROOT, file));
    }
  }
});

test("the templates of one addons directory merge into one stack without clashes", (t) => {
  // Copilot merges every template of an addons directory into one nested stack.
  for (const dir of addonDirs) {
    const seen = new Map<string, string>();
    const params = new Map<string, string>();
    for (const file of addonTemplates(dir)) {
      const tpl = readTemplate(file);
      for (const section of ["Resources", "Outputs", "Conditions", "Mappings"]) {
        for (const id of Object.keys(tpl[section] ?? {})) {
          const key = `${section}.${id}`;
          t.false(seen.has(key), `${key} is in both ${seen.get(key)} and ${relative(ROOT, file)}`);
          seen.set(key, relative(ROOT, file));
        }
      }
      for (const [name, p] of Object.entries(tpl.Parameters ?? {})) {
        const json = JSON.stringify(p);
        const earlier = params.get(name);
        if (earlier !== undefined)
          t.is(json, earlier, `parameter ${name} differs across ${relative(ROOT, dir)}`);
        params.set(name, json);
      }
    }
  }
});

test("addons take exactly the parameters Copilot passes them", (t) => {
  const envParams = Object.keys(
    (readYaml(join(COPILOT, "environments/addons/addons.parameters.yml")).Parameters ??
      {}) as object,
  );
  for (const file of addonTemplates(join(COPILOT, "environments/addons"))) {
    t.deepEqual(
      Object.keys(readTemplate(file).Parameters).sort(),
      ["App", "Env", ...envParams].sort(),
      relative(ROOT, file),
    );
  }
  for (const s of SERVICES) {
    for (const file of addonTemplates(join(COPILOT, s, "addons"))) {
      t.deepEqual(
        Object.keys(readTemplate(file).Parameters).sort(),
        ["App", "Env", "Name"],
        relative(ROOT, file),
      );
    }
  }
});

test("the Global Table has the keys, index, stream and TTL the DynamoDB adapter uses", (t) => {
  const table = readTemplate(join(COPILOT, "environments/addons/dynamodb.yml")).Resources.ChatTable
    .Properties;
  const code = chatTableDefinition("x");
  const byName = (xs: Array<{ AttributeName?: string }> | undefined) =>
    [...(xs ?? [])].sort((a, b) => String(a.AttributeName).localeCompare(String(b.AttributeName)));
  t.deepEqual(byName(table.AttributeDefinitions), byName(code.AttributeDefinitions));
  t.deepEqual(table.KeySchema, code.KeySchema);
  t.deepEqual(table.GlobalSecondaryIndexes, code.GlobalSecondaryIndexes);
  t.is(table.StreamSpecification.StreamViewType, code.StreamSpecification?.StreamViewType);
  t.is(table.BillingMode, code.BillingMode);
  t.deepEqual(table.TimeToLiveSpecification, { AttributeName: TTL_ATTRIBUTE, Enabled: true });
  t.deepEqual(
    table.Replicas.map((r: { Region: string }) => r.Region).sort(),
    ENVIRONMENTS.sort(),
    "a replica in every environment's region (environments are named after their region)",
  );
});

test("the MSK Replicator mirrors exactly the topics the services read from other regions", (t) => {
  const replicator = readTemplate(join(COPILOT, "environments/addons/kafka.yml")).Resources
    .Replicator.Properties;
  const [info] = replicator.ReplicationInfoList;
  const mirrored = Object.values(TOPICS)
    .filter((topic) => topic.mirrored)
    .map((topic) => topic.name.replace(/\./g, "\\."));
  t.deepEqual([...info.TopicReplication.TopicsToReplicate].sort(), mirrored.sort());
  t.is(info.TopicReplication.TopicNameConfiguration.Type, "PREFIXED_WITH_SOURCE_CLUSTER_ALIAS");
});

test("the services' copies of the MSK access policy are identical", (t) => {
  const copies = SERVICES.flatMap((s) => {
    try {
      return [readFileSync(join(COPILOT, s, "addons/kafka-access.yml"), "utf8")];
    } catch {
      return [];
    }
  });
  t.is(copies.length, 3, "gateway, messaging and notification use Kafka");
  t.true(copies.every((c) => c === copies[0]));
});

test("validation catches broken templates", async (t) => {
  const kafka = readFileSync(join(COPILOT, "environments/addons/kafka.yml"), "utf8");
  const redis = readFileSync(join(COPILOT, "environments/addons/redis.yml"), "utf8");
  const cases: Array<[string, string, RegExp]> = [
    [
      "a bootstrap-broker attribute MSK does not have",
      kafka.replace("!GetAtt Kafka.Arn\n    Export", "!GetAtt Kafka.BootstrapBrokers\n    Export"),
      /AWS::MSK::Cluster has no attribute BootstrapBrokers/,
    ],
    [
      "a misspelled property",
      redis.replace("MultiAZEnabled", "MultiAzEnabled"),
      /MultiAzEnabled: unknown property/,
    ],
    [
      "a missing required property",
      redis.replace(/ {6}ReplicationGroupDescription:.*\n/, ""),
      /ReplicationGroupDescription: required property missing/,
    ],
    [
      "an unknown resource type",
      redis.replace("AWS::ElastiCache::SubnetGroup", "AWS::ElastiCache::SubnetGroupz"),
      /unknown resource type/,
    ],
    [
      "a dangling Ref",
      redis.replace("!Ref RedisSubnetGroup", "!Ref RedisSubnets"),
      /Ref RedisSubnets: no such/,
    ],
    [
      "an import nobody exports",
      readFileSync(join(COPILOT, "gateway/addons/route53.yml"), "utf8").replace(
        "PublicLoadBalancerDNS",
        "PublicLBDNS",
      ),
      /ImportValue \$\{App\}-\$\{Env\}-PublicLBDNS: no known export matches/,
    ],
    ["an unknown tag", redis.replace("!Split", "!Splt"), /Unresolved tag: !Splt/],
  ];
  for (const [what, text, expected] of cases) {
    const errors = await validateTemplate(text, { imports });
    t.true(
      errors.some((e) => expected.test(e)),
      `${what}: ${JSON.stringify(errors)}`,
    );
  }
});
