/**
 * The addon templates pass cfn-lint, the linter CloudFormation's own team maintains; and a table
 * of realistic defects, each applied to a real template, shows the lint would catch them.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import test from "ava";
import {
  addonTemplates,
  type CfnLintFinding,
  cfnLint,
  formatFinding,
  lintAddons,
} from "../support/cfn-lint.ts";
import { ROOT } from "../support/tools.ts";
import { COPILOT, ENVIRONMENTS, readTemplate } from "./support.ts";

/** ADDON_DIRS are the addons directories under copilot/: the environments' and each workload's. */
const ADDON_DIRS = readdirSync(COPILOT, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(COPILOT, d.name, "addons")))
  .map((d) => join(COPILOT, d.name, "addons"))
  .sort();

/** STANDALONE are the templates deployed beside Copilot, linted without parameter values. */
const STANDALONE = existsSync(join(ROOT, "deploy"))
  ? readdirSync(join(ROOT, "deploy"))
      .filter((f) => /\.ya?ml$/.test(f))
      .map((f) => join(ROOT, "deploy", f))
  : [];

/** ALWAYS_PASSED are the parameters Copilot passes every addons stack of its kind. */
const ALWAYS_PASSED = new Set(["App", "Env", "Name"]);

/**
 * ACCEPTED are the findings that do not fail the lint, each because Copilot's conventions force
 * it. Every other finding fails, warnings included: cfn-lint's warnings on templates like these
 * are deployment failures in waiting (W1001, a Ref to a resource a condition can remove, fails
 * the stack in the environments where the condition is false).
 */
const ACCEPTED: Array<{ rule: string; why: string; applies: (f: CfnLintFinding) => boolean }> = [
  {
    rule: "W2001",
    why:
      "an unused parameter that Copilot passes every addons stack (App, Env; Name to a " +
      "workload's): a stack fails on a parameter it does not declare, so the stack declares " +
      "them, used or not (an unused addons.parameters.yml entry still fails: drop it)",
    applies: (f) => f.path[0] === "Parameters" && ALWAYS_PASSED.has(String(f.path[1])),
  },
];
const accepted = (f: CfnLintFinding) => ACCEPTED.some((a) => a.rule === f.rule && a.applies(f));

const linted = new Map<string, Promise<CfnLintFinding[]>>();
/** lint lints an addons directory's stack once per test process. */
function lint(dir: string): Promise<CfnLintFinding[]> {
  let findings = linted.get(dir);
  if (!findings) {
    findings = lintAddons(dir, ENVIRONMENTS);
    linted.set(dir, findings);
  }
  return findings;
}

const report = (findings: CfnLintFinding[]) =>
  `every cfn-lint finding (accepted: ${ACCEPTED.map((a) => a.rule).join(", ")}):\n` +
  findings.map(formatFinding).join("\n");

test("cfn-lint finds the addon templates", (t) => {
  const names = ADDON_DIRS.flatMap(addonTemplates).map((f) => relative(COPILOT, f));
  for (const name of ["dynamodb.yml", "kafka.yml", "redis.yml"]) {
    t.true(names.includes(`environments/addons/${name}`), `${name} in ${names.join(", ")}`);
  }
  t.true(
    names.some((n) => !n.startsWith("environments/")),
    "the workloads' addons are linted too",
  );
});

for (const dir of ADDON_DIRS) {
  const name = relative(ROOT, dir);
  test(`cfn-lint passes the ${name} stack`, async (t) => {
    const findings = await lint(dir);
    t.deepEqual(findings.filter((f) => !accepted(f)).map(formatFinding), [], report(findings));
    // Suppressions belong in ACCEPTED, with their reason, not in the templates.
    for (const file of addonTemplates(dir)) {
      const tpl = readTemplate(file);
      const suppressed = [
        ...(tpl.Metadata?.["cfn-lint"] ? ["Metadata"] : []),
        ...Object.entries<{ Metadata?: Record<string, unknown> }>(tpl.Resources ?? {})
          .filter(([, r]) => r?.Metadata?.["cfn-lint"])
          .map(([id]) => `Resources.${id}.Metadata`),
      ];
      t.deepEqual(
        suppressed,
        [],
        `${relative(ROOT, file)}: cfn-lint configuration in the template`,
      );
    }
  });
}

for (const file of STANDALONE) {
  const name = relative(ROOT, file);
  test(`cfn-lint passes ${name}`, async (t) => {
    const findings = await cfnLint({ file });
    t.deepEqual(findings.map(formatFinding), [], report(findings));
  });
}

/**
 * A defect made in a real template: `anchor` must occur in it exactly once (so a later edit of
 * the template fails this test loudly rather than leaving it testing nothing) and is replaced
 * by `by` (a string, or with $1… for a RegExp anchor's groups). The mutated template must get
 * a new finding of `rule` that fails the lint.
 */
interface Mutation {
  defect: string;
  template: string;
  anchor: string | RegExp;
  by: string;
  rule: string;
  /** env is the environment to lint the defect in (a run of cfn-lint each): the first one's by default. */
  env?: string;
}

const MUTATIONS: Mutation[] = [
  {
    defect: "an enum typo: a StreamViewType DynamoDB does not have",
    template: "environments/addons/dynamodb.yml",
    anchor: "StreamViewType: NEW_AND_OLD_IMAGES",
    by: "StreamViewType: NEW_AND_OLD_IMAGE",
    rule: "E3030",
  },
  {
    defect: "an enum typo: the console's name of a BillingMode",
    template: "environments/addons/dynamodb.yml",
    anchor: "BillingMode: PAY_PER_REQUEST",
    by: "BillingMode: ON_DEMAND",
    rule: "E3030",
  },
  {
    defect: "a string where an integer is expected",
    template: "environments/addons/kafka.yml",
    anchor: /NumberOfBrokerNodes: \d+/,
    by: "NumberOfBrokerNodes: three",
    rule: "E3012",
  },
  {
    defect: "an unconditional output that Refs a resource only the primary environment has",
    template: "environments/addons/dynamodb.yml",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: CloudFormation's Fn::Sub syntax
    anchor: 'Value: !Sub "${App}-chat"',
    by: "Value: !Ref ChatTable",
    // A warning to cfn-lint, and a failed stack in every environment but the primary: this is
    // why warnings fail the lint.
    rule: "W1001",
  },
  // cfn-lint 1.51 checks FindInMap keys in resource properties, not in Conditions or in the
  // variables of a Fn::Sub: a typo in dynamodb.yml's IsPrimary would pass it.
  {
    defect: "a FindInMap second-level key the mapping does not have",
    template: "environments/addons/alarms.yml",
    anchor: "Value: !FindInMap [AlarmPeers, !Ref Env, Region]",
    by: "Value: !FindInMap [AlarmPeers, !Ref Env, Peer]",
    rule: "E1011",
  },
  {
    // Found only with Env resolved to each environment, in a run of its own.
    defect: "a mapping without an entry for one environment",
    template: "environments/addons/alarms.yml",
    env: "eu-west-1",
    anchor: /^( {4})eu-west-1:(\n {6}Region: us-east-1)$/m,
    by: "$1eu-west1:$2",
    rule: "E1011",
  },
  {
    defect: "a security-group description with an apostrophe, which EC2 rejects",
    template: "environments/addons/redis.yml",
    anchor: /^( +)GroupDescription: .*$/m,
    by: "$1GroupDescription: Redis, reachable from the environment's services only",
    rule: "E3031",
  },
  {
    defect: "an ingress-rule description with an apostrophe (our schema patch in cfn-lint.ts)",
    template: "environments/addons/redis.yml",
    anchor: /(SourceSecurityGroupId: !Ref EnvironmentSecurityGroup\n\s+)Description: .*/,
    by: "$1Description: From the environment's services",
    rule: "E3031",
  },
  {
    defect: "an index name DynamoDB's pattern rejects",
    template: "environments/addons/dynamodb.yml",
    anchor: "IndexName: by-order",
    by: "IndexName: by order",
    rule: "E3031",
  },
];

/** mutate applies a mutation's replace, failing unless its anchor occurs exactly once. */
function mutate(text: string, m: Mutation): string {
  const count =
    typeof m.anchor === "string"
      ? text.split(m.anchor).length - 1
      : [...text.matchAll(new RegExp(m.anchor.source, `${m.anchor.flags.replace("g", "")}g`))]
          .length;
  if (count !== 1) {
    throw new Error(
      `${m.template}: the mutation anchor ${String(m.anchor)} occurs ${count} times, not once: ` +
        "update the mutation to the template",
    );
  }
  return typeof m.anchor === "string"
    ? text.replace(m.anchor, () => m.by)
    : text.replace(m.anchor, m.by);
}

const key = (f: CfnLintFinding) => `${f.rule} ${f.path.join("/")} ${f.message}`;

for (const m of MUTATIONS) {
  test(`cfn-lint catches ${m.defect}`, async (t) => {
    const file = join(COPILOT, m.template);
    const dir = dirname(file);
    const mutated = mutate(readFileSync(file, "utf8"), m);
    const [before, after] = await Promise.all([
      lint(dir),
      // One environment is enough for most defects, and halves the runs; the baseline covers
      // every environment, so nothing it already reports counts as caught.
      lintAddons(dir, [m.env ?? (ENVIRONMENTS[0] as string)], { [file]: mutated }),
    ]);
    const old = new Set(before.map(key));
    const found = after.filter((f) => !old.has(key(f)) && !accepted(f));
    t.true(
      found.some((f) => f.rule === m.rule && f.file === file),
      `${m.template} with ${m.defect}: expected a new ${m.rule} in it, got:\n` +
        found.map(formatFinding).join("\n"),
    );
  });
}
