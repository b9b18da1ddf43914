import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import test from "ava";
import {
  chatTableDefinition,
  TTL_ATTRIBUTE,
} from "../../services/shared/adapters/dynamodb/table.ts";
import { validateTemplate } from "../support/cloudformation.ts";
import { ROOT } from "../support/tools.ts";
import {
  addonTemplates,
  COPILOT,
  COPILOT_ENV_EXPORTS,
  ENVIRONMENTS,
  envAddonExports,
  mergedAddons,
  readTemplate,
  readYaml,
  SERVICES,
} from "./support.ts";

const imports = [...COPILOT_ENV_EXPORTS, ...envAddonExports()];
const addonDirs = [
  join(COPILOT, "environments/addons"),
  ...[...SERVICES, "kafka-topics"].map((s) => join(COPILOT, s, "addons")),
];
/** The templates deployed beside Copilot (aws cloudformation deploy). */
const standalone = [join(ROOT, "deploy/replicator.yml")];

test("every template is valid CloudFormation against the AWS resource specification", async (t) => {
  // Each addons directory as Copilot deploys it: its templates merged into one stack.
  for (const dir of addonDirs) {
    const errors = await validateTemplate(JSON.stringify(mergedAddons(dir)), { imports });
    t.deepEqual(errors, [], relative(ROOT, dir));
  }
  for (const file of standalone) {
    const errors = await validateTemplate(readFileSync(file, "utf8"), { imports });
    t.deepEqual(errors, [], relative(ROOT, file));
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

/**
 * passedParameters are an addon's parameters that Copilot must pass: those without a default.
 * Parameters read from SSM (AWS::SSM::Parameter::Value with the parameter's name as default)
 * are resolved by CloudFormation itself at each deploy.
 */
function passedParameters(file: string): string[] {
  const params = Object.entries<{ Type: string; Default?: string }>(readTemplate(file).Parameters);
  for (const [name, p] of params) {
    if (p.Default !== undefined && !p.Type.startsWith("AWS::SSM::Parameter::Value<"))
      throw new Error(
        `${relative(ROOT, file)}: ${name} has a default Copilot would never override`,
      );
  }
  return params
    .filter(([, p]) => p.Default === undefined)
    .map(([name]) => name)
    .sort();
}

test("addons take exactly the parameters Copilot passes them (and SSM parameters)", (t) => {
  const envParams = Object.keys(
    (readYaml(join(COPILOT, "environments/addons/addons.parameters.yml")).Parameters ??
      {}) as object,
  );
  for (const file of addonTemplates(join(COPILOT, "environments/addons"))) {
    t.deepEqual(passedParameters(file), ["App", "Env", ...envParams].sort(), relative(ROOT, file));
  }
  for (const s of [...SERVICES, "kafka-topics"]) {
    const dir = join(COPILOT, s, "addons");
    // A service's addons.parameters.yml adds parameters from its own stack (its resources).
    const extra = existsSync(join(dir, "addons.parameters.yml"))
      ? Object.keys((readYaml(join(dir, "addons.parameters.yml")).Parameters ?? {}) as object)
      : [];
    const declared = new Set<string>();
    for (const file of addonTemplates(dir)) {
      const passed = passedParameters(file);
      for (const p of passed) declared.add(p);
      t.deepEqual(
        passed.filter((p) => !extra.includes(p)),
        ["App", "Env", "Name"],
        relative(ROOT, file),
      );
    }
    for (const p of extra) t.true(declared.has(p), `${s}: ${p} is passed but no addon takes it`);
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
