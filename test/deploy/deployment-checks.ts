/**
 * The cross-references of the deployment that no single linter sees: between the templates,
 * the manifests, the job, the services' code and docs/deploy.md. Each check reads the files as
 * text (a `Files` map, so tests can hand it mutated copies) and returns what is wrong, one line
 * per problem naming the file.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parse } from "yaml";
import { WS_PATH } from "../../services/gateway/server.ts";
import { DEFAULT_REPLICATION } from "../../services/shared/adapters/kafka/topic-admin.ts";
import { TOPICS } from "../../services/shared/topics.ts";
import { parseTemplate } from "../support/cloudformation.ts";
import { ROOT } from "../support/tools.ts";

/** placeholder is `${name}`, as manifests and templates write a variable. */
export const placeholder = (name: string): string => `\${${name}}`;

/** Files maps a path relative to the repository to its text. */
export type Files = Map<string, string>;

/** SERVICE_NAMES are the Copilot services; JOB is the topics job. */
export const SERVICE_NAMES = ["gateway", "messaging", "notification", "persistence"] as const;
export const JOB = "kafka-topics";
const KAFKA_USERS = ["gateway", "messaging", "notification"];

/** deploymentFiles reads every file the checks look at. */
export function deploymentFiles(): Files {
  const files: Files = new Map();
  const add = (path: string) => files.set(path, readFileSync(join(ROOT, path), "utf8"));
  const walk = (dir: string) => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (/\.(ya?ml|sh|md)$/.test(e.name) || e.name === ".workspace") add(path);
    }
  };
  walk("copilot");
  walk("deploy");
  add("docs/deploy.md");
  add("scripts/deploy-env.sh");
  return files;
}

// biome-ignore lint/suspicious/noExplicitAny: manifests and templates are untyped YAML
type Any = any;

function text(files: Files, path: string): string {
  const t = files.get(path);
  if (t === undefined) throw new Error(`${path}: missing`);
  return t;
}
const manifest = (files: Files, name: string): Any =>
  parse(text(files, `copilot/${name}/manifest.yml`));
function template(files: Files, path: string): Any {
  const { template: tpl, errors } = parseTemplate(text(files, path));
  if (errors.length > 0) throw new Error(`${path}: ${errors.join("; ")}`);
  return tpl;
}

/** EC2 allows only these in security group descriptions (and their rules'). */
const EC2_DESCRIPTION = /^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]*$/;

/** checkSecurityGroupText: descriptions EC2 would refuse at deploy time. */
export function checkSecurityGroupText(files: Files): string[] {
  const problems: string[] = [];
  for (const [path] of files) {
    if (!/\.ya?ml$/.test(path) || !(path.includes("/addons/") || path.startsWith("deploy/")))
      continue;
    if (path.endsWith("addons.parameters.yml")) continue;
    const tpl = template(files, path);
    for (const [id, r] of Object.entries<Any>(tpl.Resources ?? {})) {
      const p = r.Properties ?? {};
      const texts: string[] = [];
      if (r.Type === "AWS::EC2::SecurityGroup") {
        texts.push(p.GroupDescription);
        for (const rule of [...(p.SecurityGroupIngress ?? []), ...(p.SecurityGroupEgress ?? [])])
          if (typeof rule.Description === "string") texts.push(rule.Description);
      }
      if (/^AWS::EC2::SecurityGroup(Ingress|Egress)$/.test(r.Type) && p.Description)
        texts.push(p.Description);
      for (const t of texts) {
        if (typeof t === "string" && !EC2_DESCRIPTION.test(t))
          problems.push(`${path}: ${id}: EC2 refuses the description ${JSON.stringify(t)}`);
      }
    }
  }
  return problems;
}

/**
 * checkKafkaSizing: brokers spread evenly over the client subnets, at least three (MSK
 * Replicator's minimum, and the replication factor the job derives), and no replication factor
 * configured above them.
 */
export function checkKafkaSizing(files: Files): string[] {
  const problems: string[] = [];
  const kafka = template(files, "copilot/environments/addons/kafka.yml").Resources.Kafka.Properties;
  const brokers = Number(kafka.NumberOfBrokerNodes);
  const params = template(files, "copilot/environments/addons/addons.parameters.yml").Parameters;
  const subnets = params.PrivateSubnets?.["Fn::Join"]?.[1]?.length ?? 0;
  if (!Number.isInteger(brokers) || brokers < 3)
    problems.push(
      `kafka.yml: ${kafka.NumberOfBrokerNodes} brokers; MSK Replicator needs at least 3 and topics are replicated ${DEFAULT_REPLICATION} times`,
    );
  if (subnets === 0 || brokers % subnets !== 0)
    problems.push(`kafka.yml: ${brokers} brokers cannot spread evenly over ${subnets} subnets`);
  for (const env of environments(files)) {
    const zones = manifest(files, `environments/${env}`).network.vpc.subnets.private.length;
    if (zones !== subnets)
      problems.push(`environments/${env}: ${zones} private subnets, the addons pass ${subnets}`);
  }
  for (const name of [...SERVICE_NAMES, JOB]) {
    const r = manifest(files, name).variables?.KAFKA_REPLICATION;
    if (r !== undefined && Number(r) > brokers)
      problems.push(`${name}: KAFKA_REPLICATION ${r} is above the cluster's ${brokers} brokers`);
  }
  return problems;
}

/**
 * checkTopicCreation: topics are created by the job alone, before any service starts: no
 * service creates topics or may, the job exists and runs on demand, and the guide runs it
 * before the first service deploy.
 */
export function checkTopicCreation(files: Files): string[] {
  const problems: string[] = [];
  for (const name of SERVICE_NAMES) {
    const m = manifest(files, name);
    const create = m.variables?.KAFKA_CREATE_TOPICS;
    if (create !== undefined && String(create) !== "false")
      problems.push(`${name}: creates topics (KAFKA_CREATE_TOPICS); only the ${JOB} job may`);
  }
  for (const name of KAFKA_USERS) {
    const policy = text(files, `copilot/${name}/addons/kafka-access.yml`);
    if (policy.includes("kafka-cluster:CreateTopic"))
      problems.push(`${name}: its task role may create topics; only the ${JOB} job's may`);
  }
  const job = manifest(files, JOB);
  if (job.type !== "Scheduled Job" || job.on?.schedule !== "none")
    problems.push(`${JOB}: must be a Scheduled Job run on demand (on.schedule "none")`);
  if (job.image?.build?.args?.SERVICE !== "jobs/kafka-topics")
    problems.push(`${JOB}: its image must run services/jobs/kafka-topics/main.ts`);
  const admin = files.get(`copilot/${JOB}/addons/kafka-admin.yml`) ?? "";
  if (!admin.includes("kafka-cluster:CreateTopic"))
    problems.push(`${JOB}: its task role cannot create topics`);
  const guide = text(files, "docs/deploy.md");
  const run = guide.indexOf(`copilot job run --name ${JOB}`);
  const firstService = guide.indexOf("copilot svc deploy");
  if (run < 0 || firstService < 0 || run > firstService)
    problems.push(`docs/deploy.md: the ${JOB} job must run before the first copilot svc deploy`);
  return problems;
}

/** checkPublicPaths: the internet reaches the gateway's /ws and health path, nothing else. */
export function checkPublicPaths(files: Files): string[] {
  const problems: string[] = [];
  const m = manifest(files, "gateway");
  const health = m.http?.healthcheck?.path ?? m.http?.healthcheck;
  if (m.http?.path !== WS_PATH)
    problems.push(
      `gateway: http.path is ${m.http?.path}; the public load balancer must route ${WS_PATH} only`,
    );
  for (const rule of m.http?.additional_rules ?? []) {
    if (rule.path !== health)
      problems.push(`gateway: additional rule ${rule.path} is public; only ${health} may be`);
  }
  const admin = Number(m.variables?.ADMIN_PORT);
  if (!admin || admin === Number(m.variables?.PORT) || admin === Number(m.image?.port))
    problems.push("gateway: ADMIN_PORT must be set, apart from the public port");
  const mapped = (m.taskdef_overrides ?? []).some(
    (o: Any) =>
      String(o.path).startsWith("ContainerDefinitions[0].PortMappings") &&
      Number(o.value?.ContainerPort) === admin,
  );
  if (!mapped) problems.push(`gateway: ADMIN_PORT ${admin} is not in the task definition`);
  return problems;
}

/**
 * checkPeers: every service and the job read CHAT_PEER_REGIONS from the one parameter the
 * guide writes with the replicators' aliases, and the replicator names copies by that alias.
 */
export function checkPeers(files: Files): string[] {
  const problems: string[] = [];
  const wanted = `/copilot/${placeholder("COPILOT_APPLICATION_NAME")}/${placeholder("COPILOT_ENVIRONMENT_NAME")}/secrets/CHAT_PEER_REGIONS`;
  for (const name of [...SERVICE_NAMES, JOB]) {
    const m = manifest(files, name);
    if (m.secrets?.CHAT_PEER_REGIONS !== wanted)
      problems.push(`${name}: CHAT_PEER_REGIONS must come from ${wanted}`);
    const plain = [
      m.variables,
      ...Object.values<Any>(m.environments ?? {}).map((e) => e.variables),
    ];
    if (plain.some((v) => v && "CHAT_PEER_REGIONS" in v))
      problems.push(`${name}: sets CHAT_PEER_REGIONS itself; it would differ from the others'`);
  }
  const replicator = template(files, "deploy/replicator.yml").Resources.Replicator.Properties;
  const [info] = replicator.ReplicationInfoList;
  if (info.TopicReplication.TopicNameConfiguration?.Type !== "PREFIXED_WITH_SOURCE_CLUSTER_ALIAS")
    problems.push("deploy/replicator.yml: copies must be prefixed with the source cluster's alias");
  const mirrored = Object.values(TOPICS)
    .filter((t) => t.mirrored)
    .map((t) => t.name.replace(/\./g, "\\."))
    .sort();
  const listed = [...info.TopicReplication.TopicsToReplicate].sort();
  if (JSON.stringify(listed) !== JSON.stringify(mirrored))
    problems.push(
      `deploy/replicator.yml: replicates ${listed.join(", ")}, the services mirror ${mirrored.join(", ")}`,
    );
  const guide = text(files, "docs/deploy.md");
  if (
    !/SourceKafkaClusterAlias/.test(guide) ||
    !/CHAT_PEER_REGIONS:\n {2}us-east-1: eu-west-1=\$\(alias_of/.test(guide)
  )
    problems.push("docs/deploy.md: must write each replicator's alias into CHAT_PEER_REGIONS");
  return problems;
}

/** checkTlsAndDns: HTTPS everywhere, and DNS failing over on the region's delivery health. */
export function checkTlsAndDns(files: Files): string[] {
  const problems: string[] = [];
  for (const env of environments(files)) {
    const certs = manifest(files, `environments/${env}`).http?.public?.certificates ?? [];
    if (certs.length === 0)
      problems.push(`environments/${env}: no certificate: clients could not use wss://`);
  }
  const gateway = manifest(files, "gateway");
  const aliases: string[] = [gateway.http?.alias ?? []].flat();
  const domain = placeholder("CHAT_DOMAIN");
  const regional = `${placeholder("COPILOT_ENVIRONMENT_NAME")}.${domain}`;
  if (!aliases.includes(domain) || !aliases.includes(regional))
    problems.push(`gateway: http.alias must be ${domain} and ${regional}`);
  // Every shell variable a manifest needs is one the deploy script exports.
  const exported = new Set(
    [...text(files, "scripts/deploy-env.sh").matchAll(/export ([A-Z_ ]+)/g)].flatMap((m) =>
      (m[1] ?? "").trim().split(/\s+/),
    ),
  );
  for (const [path, t] of files) {
    if (!/^copilot\/.*manifest\.yml$/.test(path)) continue;
    for (const [, v] of t.matchAll(/\$\{([A-Z_]+)\}/g)) {
      if (v && !v.startsWith("COPILOT_") && !exported.has(v))
        problems.push(`${path}: \${${v}} is not exported by scripts/deploy-env.sh`);
    }
  }
  const dns = template(files, "copilot/gateway/addons/route53.yml").Resources;
  const latency = Object.values<Any>(dns).find(
    (r) => r.Type === "AWS::Route53::RecordSet" && r.Properties.SetIdentifier,
  );
  const checkId = latency?.Properties.HealthCheckId?.Ref;
  const check = checkId ? dns[checkId] : undefined;
  if (check?.Type !== "AWS::Route53::HealthCheck")
    problems.push("route53.yml: the latency record must fail over on an explicit health check");
  else {
    const c = check.Properties.HealthCheckConfig;
    const health = gateway.http?.healthcheck?.path;
    if (c.ResourcePath !== health)
      problems.push(
        `route53.yml: the health check reads ${c.ResourcePath}, the gateway's is ${health}`,
      );
    if (c.Type !== "HTTPS") problems.push("route53.yml: the health check must use HTTPS");
    if (
      JSON.stringify(c.FullyQualifiedDomainName) !==
      JSON.stringify({ "Fn::Sub": `${placeholder("Env")}.${placeholder("Domain")}` })
    )
      problems.push("route53.yml: the health check must read the region's own name (its alias)");
  }
  if (latency?.Properties.AliasTarget?.EvaluateTargetHealth !== false)
    problems.push("route53.yml: target health would keep a region that cannot deliver");
  return problems;
}

/** checkPlacement: tasks run in private subnets, with their logs kept a bounded time. */
export function checkPlacement(files: Files): string[] {
  const problems: string[] = [];
  for (const name of [...SERVICE_NAMES, JOB]) {
    const m = manifest(files, name);
    if (m.network?.vpc?.placement !== "private") problems.push(`${name}: not in private subnets`);
    if (!Number.isInteger(m.logging?.retention)) problems.push(`${name}: no log retention`);
  }
  return problems;
}

/** checkParameterStore: every SSM parameter the deployment reads is written by the guide's step 0. */
export function checkParameterStore(files: Files): string[] {
  const problems: string[] = [];
  const guide = text(files, "docs/deploy.md");
  const read = new Set<string>();
  for (const [path] of files) {
    if (!/\.ya?ml$/.test(path) || !path.includes("/addons/") || path.endsWith("parameters.yml"))
      continue;
    for (const p of Object.values<Any>(template(files, path).Parameters ?? {}))
      if (String(p.Type).startsWith("AWS::SSM::Parameter::Value")) read.add(p.Default);
  }
  for (const [, name] of text(files, "scripts/deploy-env.sh").matchAll(
    /(\/connect-chat\/[a-z/-]+)/g,
  ))
    if (name) read.add(name);
  for (const name of read) {
    if (!guide.includes(`--name ${name} `))
      problems.push(
        `docs/deploy.md: nothing writes the SSM parameter ${name} the deployment reads`,
      );
  }
  return problems;
}

/**
 * checkRegionMaps: the per-region mappings of the environment addons agree with the
 * environments: one primary for the table and its backups, and every environment's peers (the
 * replica regions, the alarms' other region, the backup copy) are the other environments.
 */
export function checkRegionMaps(files: Files): string[] {
  const problems: string[] = [];
  const envs = environments(files).sort();
  const table = template(files, "copilot/environments/addons/dynamodb.yml");
  const backup = template(files, "copilot/environments/addons/backup.yml");
  const alarms = template(files, "copilot/environments/addons/alarms.yml");
  const primary = table.Mappings.Deployment.Primary.Env;
  if (backup.Mappings.BackupRegions.Primary.Env !== primary)
    problems.push(
      `backup.yml: backs up the table in ${backup.Mappings.BackupRegions.Primary.Env}; dynamodb.yml creates it in ${primary}`,
    );
  const replicas = table.Resources.ChatTable.Properties.Replicas.map((r: Any) => r.Region).sort();
  if (JSON.stringify(replicas) !== JSON.stringify(envs))
    problems.push(
      `dynamodb.yml: replicas in ${replicas.join(", ")}, environments ${envs.join(", ")}`,
    );
  for (const env of envs) {
    const others = envs.filter((e) => e !== env);
    const copyTo = backup.Mappings.BackupRegions[env]?.CopyTo;
    if (!others.includes(copyTo))
      problems.push(`backup.yml: ${env} copies its backups to ${copyTo}, not another environment`);
    const peer = alarms.Mappings.AlarmPeers[env]?.Region;
    if (!others.includes(peer))
      problems.push(`alarms.yml: ${env}'s other region is ${peer}, not another environment`);
  }
  return problems;
}

function environments(files: Files): string[] {
  return [
    ...new Set(
      [...files.keys()].flatMap((p) => {
        const m = /^copilot\/environments\/([a-z0-9-]+)\/manifest\.yml$/.exec(p);
        return m?.[1] ? [m[1]] : [];
      }),
    ),
  ];
}

/** ALL_CHECKS, by name. */
export const ALL_CHECKS = {
  checkSecurityGroupText,
  checkKafkaSizing,
  checkTopicCreation,
  checkPublicPaths,
  checkPeers,
  checkTlsAndDns,
  checkPlacement,
  checkParameterStore,
  checkRegionMaps,
};

/** relativeToRoot is a path as the checks name it. */
export const relativeToRoot = (p: string) => relative(ROOT, p);
