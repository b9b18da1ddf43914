/**
 * Runs the real CloudFormation linter, cfn-lint (a Python tool, pinned to CFN_LINT_VERSION),
 * over templates. The offline checker in cloudformation.ts knows the resource specification's
 * shapes; cfn-lint also knows what CloudFormation and the services accept: enum values,
 * patterns, value types, references to resources that a condition may remove, mapping keys —
 * resolved for the regions we deploy to and the parameter values Copilot passes.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join, relative } from "node:path";
import { isMap, isScalar, isSeq, parseDocument } from "yaml";
import { parseTemplate } from "./cloudformation.ts";
import { ROOT } from "./tools.ts";

/** CFN_LINT_VERSION is the cfn-lint the tests expect: rules and AWS schemas change per release. */
export const CFN_LINT_VERSION = "1.51.0";

/** CFN_LINT_MISSING is the error a run without cfn-lint fails with (the suite never skips). */
export const CFN_LINT_MISSING =
  `cfn-lint is missing: the CloudFormation tests run cfn-lint ${CFN_LINT_VERSION}, which is ` +
  `not on the PATH. Install it with \`pip install cfn-lint==${CFN_LINT_VERSION}\` (needs PyPI).`;

/** REGIONS are the regions we deploy to (our Copilot environments are named after them). */
export const REGIONS = ["us-east-1", "eu-west-1"];

export type CfnLintLevel = "Error" | "Warning" | "Informational";

/** CfnLintFinding is one match cfn-lint reports. */
export interface CfnLintFinding {
  /** rule is the rule id, e.g. E3031. */
  rule: string;
  level: CfnLintLevel;
  message: string;
  /** path is where in the template, e.g. ["Resources", "Redis", "Properties", "Engine"]. */
  path: Array<string | number>;
  /** line is 1-based (0 when cfn-lint gives none). */
  line: number;
  /** file is the template's path, or the name given with its text. */
  file: string;
}

/** A template to lint: a file, or text (written to a temporary file named `name`). */
export type TemplateInput = { file: string } | { text: string; name: string };

export interface CfnLintOptions {
  /** regions to check resource types and values against; REGIONS by default. */
  regions?: string[];
  /**
   * parameterSets are the parameter values of each deployment of the template: cfn-lint
   * resolves Ref, Sub and FindInMap with them and checks each set against the template's
   * Parameters (E2900).
   */
  parameterSets?: Array<Record<string, string>>;
}

/** A JSON Patch on a resource type's schema in cfn-lint (--override-spec). */
type SchemaPatch = { op: "add"; path: string; value: unknown };
const add = (path: string, value: unknown): SchemaPatch => ({ op: "add", path, value });

/**
 * EC2's character set for security-group rule descriptions. cfn-lint 1.51 checks it for a
 * group's GroupDescription (E3031) but not for the Description of an ingress or egress rule,
 * which EC2 rejects just the same, so we add it. This is the stricter set, of rules that
 * reference a security group (no "&"): a description that passes is valid on every rule.
 */
const RULE_DESCRIPTION = "^[a-zA-Z0-9. _\\-:/()#,@\\[\\]+=;{}!$*]*$";
const ruleDescription = (path: string) => [
  add(`${path}/pattern`, RULE_DESCRIPTION),
  add(`${path}/maxLength`, 255),
];

/**
 * DynamoDB's enums and name patterns. cfn-lint 1.51 ships its DynamoDB table schemas without
 * its own patch of them (one operation of the patch no longer applies, so none was), so it
 * would take any BillingMode or StreamViewType: these are the values of that patch.
 */
const DYNAMODB_TABLE = [
  add("/properties/BillingMode/enum", ["PAY_PER_REQUEST", "PROVISIONED"]),
  add("/definitions/StreamSpecification/properties/StreamViewType/enum", [
    "KEYS_ONLY",
    "NEW_AND_OLD_IMAGES",
    "NEW_IMAGE",
    "OLD_IMAGE",
  ]),
  add("/definitions/Projection/properties/ProjectionType/enum", ["ALL", "INCLUDE", "KEYS_ONLY"]),
  add("/definitions/GlobalSecondaryIndex/properties/IndexName/pattern", "^[a-zA-Z0-9_.-]+$"),
  add("/definitions/LocalSecondaryIndex/properties/IndexName/pattern", "^[a-zA-Z0-9_.-]+$"),
];

/** SCHEMA_PATCHES close gaps in cfn-lint 1.51's schemas (see above). */
const SCHEMA_PATCHES: { Patches: Record<string, SchemaPatch[]> } = {
  Patches: {
    "AWS::EC2::SecurityGroup": [
      ...ruleDescription("/definitions/Ingress/properties/Description"),
      ...ruleDescription("/definitions/Egress/properties/Description"),
    ],
    "AWS::EC2::SecurityGroupIngress": ruleDescription("/properties/Description"),
    "AWS::EC2::SecurityGroupEgress": ruleDescription("/properties/Description"),
    "AWS::DynamoDB::GlobalTable": DYNAMODB_TABLE,
    "AWS::DynamoDB::Table": [
      ...DYNAMODB_TABLE,
      add("/definitions/SSESpecification/properties/SSEType/enum", ["AES256", "KMS"]),
      add("/properties/TableClass/enum", ["STANDARD", "STANDARD_INFREQUENT_ACCESS"]),
    ],
  },
};

/** execCfnLint runs cfn-lint; it rejects with CFN_LINT_MISSING when there is none. */
function execCfnLint(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "cfn-lint",
      args,
      { maxBuffer: 64 * 1024 * 1024, timeout: 180_000 },
      (err, stdout, stderr) => {
        if (!err) {
          resolve(stdout);
        } else if (err.code === "ENOENT" || err.code === 127) {
          // 127: a pyenv shim whose Python version has no cfn-lint.
          reject(new Error(CFN_LINT_MISSING));
        } else {
          const how = err.killed ? "timed out" : `exit ${err.code ?? err.signal}`;
          reject(new Error(`cfn-lint ${args.join(" ")}: ${how}\n${stderr}${stdout}`));
        }
      },
    );
  });
}

let checked: Promise<void> | undefined;
/** checkCfnLint fails (once per process) unless cfn-lint CFN_LINT_VERSION is installed. */
export function checkCfnLint(): Promise<void> {
  checked ??= execCfnLint(["--version"]).then((out) => {
    const found = out.trim().replace(/^cfn-lint\s+/, "");
    if (found !== CFN_LINT_VERSION) {
      throw new Error(
        `cfn-lint ${found} is installed, but the tests expect ${CFN_LINT_VERSION} (findings ` +
          `change between releases): pip install cfn-lint==${CFN_LINT_VERSION}`,
      );
    }
  });
  return checked;
}

// A cfn-lint run is a Python process that loads the AWS schemas (about 1.5 s of CPU): run no
// more at once than there are cores, however many tests ask.
const LIMIT = Math.max(1, availableParallelism());
let running = 0;
const waiting: Array<() => void> = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running < LIMIT) running++;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  try {
    return await fn();
  } finally {
    // Hand the slot to the next waiter directly, so no newcomer can take it in between.
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

/** The shape of one match in `cfn-lint --format json`. */
interface JsonMatch {
  Rule: { Id: string };
  Level: CfnLintLevel;
  Message: string;
  Location: { Start: { LineNumber: number }; Path: Array<string | number> | null };
}

/**
 * cfnLint lints one template and returns every finding (errors and warnings; cfn-lint leaves
 * informational rules out by default). It runs cfn-lint once per parameter set: given several
 * sets in one run, cfn-lint reports a value only if it is wrong in every set (a mapping key
 * one environment lacks would pass). It ignores .cfnlintrc files, so what is accepted is
 * decided by the tests alone (template Metadata still applies).
 */
export async function cfnLint(
  template: TemplateInput,
  opts: CfnLintOptions = {},
): Promise<CfnLintFinding[]> {
  await checkCfnLint();
  const dir = await mkdtemp(join(tmpdir(), "cfn-lint-"));
  try {
    const file = "file" in template ? template.file : join(dir, basename(template.name));
    if ("text" in template) await writeFile(file, template.text);
    const config = join(dir, "cfnlintrc.yml");
    await writeFile(config, "{}\n");
    const patches = join(dir, "schema-patches.json");
    await writeFile(patches, JSON.stringify(SCHEMA_PATCHES));
    const common = [
      "--format",
      "json",
      "--non-zero-exit-code",
      "none",
      "--config-file",
      config,
      "--override-spec",
      patches,
      "--regions",
      ...(opts.regions ?? REGIONS),
    ];
    const sets = opts.parameterSets?.length ? opts.parameterSets : [undefined];
    const runs = await Promise.all(
      sets.map(async (set) => {
        const params = set
          ? ["--parameters", ...Object.entries(set).map(([k, v]) => `${k}=${v}`)]
          : [];
        const args = [...common, ...params, "--", file];
        const out = await limited(() => execCfnLint(args));
        try {
          return JSON.parse(out) as JsonMatch[];
        } catch {
          throw new Error(`cfn-lint ${args.join(" ")}: output is not JSON:\n${out}`);
        }
      }),
    );
    const seen = new Set<string>();
    const findings: CfnLintFinding[] = [];
    for (const m of runs.flat()) {
      const f: CfnLintFinding = {
        rule: m.Rule.Id,
        level: m.Level,
        message: m.Message,
        path: m.Location.Path ?? [],
        line: m.Location.Start.LineNumber,
        file: "file" in template ? template.file : template.name,
      };
      const key = JSON.stringify([f.rule, f.line, f.path, f.message]);
      if (!seen.has(key)) findings.push(f);
      seen.add(key);
    }
    return findings;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** formatFinding prints a finding on one line, with the file relative to the repository. */
export function formatFinding(f: CfnLintFinding): string {
  const file = isAbsolute(f.file) ? relative(ROOT, f.file) : f.file;
  return `${f.level} ${f.rule} ${file}:${f.line} ${f.path.join("/")}: ${f.message}`;
}

/** addonTemplates lists the templates of a Copilot addons directory. */
export function addonTemplates(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && !/^addons\.parameters\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Placeholder values of the Copilot stack resources that addons.parameters.yml files pass
 * (environment stack: VPC, subnets, security group; service stack: the scalable target), in
 * the formats cfn-lint checks (vpc-…, subnet-…, sg-…).
 */
const STACK_VALUES: Record<string, string> = {
  VpcId: "vpc-0123456789abcdef0",
  PrivateSubnets: "subnet-0123456789abcdef0,subnet-0fedcba9876543210,subnet-00112233445566778",
  EnvironmentSecurityGroup: "sg-0123456789abcdef0",
  ScalableTargetId:
    "service/connect-chat-env-Cluster/connect-chat-env-svc|ecs:service:DesiredCount|ecs",
};

/**
 * copilotParameterSets returns the parameters Copilot passes the stack of an addons directory
 * under copilot/, one set per environment: App and Env, Name (the workload) to a workload's
 * addons, and the entries of the directory's addons.parameters.yml.
 */
export function copilotParameterSets(
  dir: string,
  environments: string[],
): Array<Record<string, string>> {
  const owner = basename(dirname(dir));
  const workspace = join(dirname(dirname(dir)), ".workspace");
  if (basename(dir) !== "addons") throw new Error(`${dir} is not an addons directory`);
  const app = /^application:\s*(\S+)/m.exec(readFileSync(workspace, "utf8"))?.[1];
  if (!app) throw new Error(`no application in ${workspace}`);
  const passed: Record<string, string> = owner === "environments" ? {} : { Name: owner };
  const file = join(dir, "addons.parameters.yml");
  if (existsSync(file)) {
    const { template, errors } = parseTemplate(readFileSync(file, "utf8"));
    if (!template) throw new Error(`${file}: ${errors.join("; ")}`);
    for (const name of Object.keys(template.Parameters ?? {})) {
      const value = STACK_VALUES[name];
      if (value === undefined) throw new Error(`${file} passes ${name}: add it to STACK_VALUES`);
      passed[name] = value;
    }
  }
  return environments.map((env) => ({ App: app, Env: env, ...passed }));
}

const SECTIONS = ["Parameters", "Rules", "Mappings", "Conditions", "Resources", "Outputs"];

/** lineOf finds the line of `path` in YAML text: of its deepest key or item that exists. */
function lineOf(text: string, path: Array<string | number>): number {
  const doc = parseDocument(text);
  let node: unknown = doc.contents;
  let offset = 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === key);
      if (!pair || !isScalar(pair.key)) break;
      offset = pair.key.range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === "number" && node.items[key]) {
      const item: unknown = node.items[key];
      if (isScalar(item) || isMap(item) || isSeq(item)) offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return text.slice(0, offset).split("\n").length;
}

/**
 * lintAddons lints an addons directory the way Copilot deploys it: its templates merged into
 * one stack (a template may use another's resources), once per environment with the
 * parameters Copilot passes. Each finding points into the template that holds its path
 * (`file` is the directory when none does, e.g. a parameter no template declares). `texts`
 * stands in for the content of some of the templates (a mutation test's defects).
 */
export async function lintAddons(
  dir: string,
  environments: string[],
  texts: Record<string, string> = {},
): Promise<CfnLintFinding[]> {
  // biome-ignore lint/suspicious/noExplicitAny: templates are untyped JSON
  const merged: Record<string, any> = { AWSTemplateFormatVersion: "2010-09-09" };
  const owner = new Map<string, { file: string; text: string }>();
  for (const file of addonTemplates(dir)) {
    const text = texts[file] ?? readFileSync(file, "utf8");
    const { template, errors } = parseTemplate(text);
    if (!template) throw new Error(`${relative(ROOT, file)}: ${errors.join("; ")}`);
    for (const section of SECTIONS) {
      for (const [id, value] of Object.entries(template[section] ?? {})) {
        merged[section] ??= {};
        merged[section][id] = value;
        if (!owner.has(`${section}/${id}`)) owner.set(`${section}/${id}`, { file, text });
      }
    }
  }
  const findings = await cfnLint(
    { text: `${JSON.stringify(merged, null, 2)}\n`, name: `${basename(dirname(dir))}.json` },
    { parameterSets: copilotParameterSets(dir, environments) },
  );
  return findings.map((f) => {
    const source = owner.get(`${f.path[0]}/${f.path[1]}`);
    if (!source) return { ...f, file: dir, line: 0 };
    return { ...f, file: source.file, line: lineOf(source.text, f.path) };
  });
}
