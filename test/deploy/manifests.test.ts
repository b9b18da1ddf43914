import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import test from "ava";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  loadGatewayConfig,
  loadMessagingConfig,
  loadNotificationConfig,
  loadPersistenceConfig,
  VARIABLES,
} from "../../services/shared/config.ts";
import { NEEDS } from "../../services/shared/internal-auth.ts";
import { exportMatches } from "../support/cloudformation.ts";
import { ROOT } from "../support/tools.ts";
import {
  type BackendService,
  describeIssues,
  durationSeconds,
  type LoadBalancedWebService,
  manifestProblems,
  type ScheduledJob,
  valuesOnly,
} from "./copilot-schema.ts";
import { COPILOT, ENVIRONMENTS, envAddonExports, readYaml, SERVICES } from "./support.ts";

type Service = LoadBalancedWebService | BackendService;
type Workload = Service | ScheduledJob;

const DEFAULT_PORTS: Record<string, number> = {
  gateway: loadGatewayConfig({ AUTH_JWKS_URL: "https://idp.example/jwks" }).port,
  messaging: loadMessagingConfig({}).port,
  notification: loadNotificationConfig({}).port,
  persistence: loadPersistenceConfig({}).port,
};

/**
 * parseAs reads a manifest's values, failing with every problem of their fields and types. The
 * checks Copilot makes on the merged manifest are left to the validity test, so that one such
 * problem fails that test only.
 */
function parseAs<S extends z.ZodType>(schema: S, path: string): z.infer<S> {
  const result = schema.safeParse(readYaml(path));
  if (!result.success)
    throw new Error(
      `${path} is not a valid Copilot manifest:\n  ${describeIssues(result.error.issues).join("\n  ")}`,
    );
  return result.data;
}

function manifest(service: string): Service {
  const path = join(COPILOT, service, "manifest.yml");
  return readYaml(path).type === "Load Balanced Web Service"
    ? parseAs(valuesOnly.loadBalancedWebService, path)
    : parseAs(valuesOnly.backendService, path);
}

/** WORKLOADS are the directories of copilot/ holding a service's or job's manifest. */
const WORKLOADS = readdirSync(COPILOT, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(COPILOT, d.name, "manifest.yml")))
  .map((d) => d.name);

function workload(name: string): Workload {
  const path = join(COPILOT, name, "manifest.yml");
  return readYaml(path).type === "Scheduled Job"
    ? parseAs(valuesOnly.scheduledJob, path)
    : manifest(name);
}

/**
 * dockerBuild resolves `image.build` as Copilot does (ImageLocationOrBuild.BuildConfig): the
 * Dockerfile path is relative to the workspace, the context defaults to the Dockerfile's directory.
 */
function dockerBuild(build: Workload["image"]["build"]) {
  if (build === undefined) return undefined;
  const b: { dockerfile?: string; context?: string; args?: Record<string, unknown> } =
    typeof build === "string" ? { dockerfile: build } : build;
  return {
    dockerfile: b.dockerfile ?? join(b.context ?? "", "Dockerfile"),
    context: b.context ?? dirname(b.dockerfile ?? ""),
    args: Object.fromEntries(Object.entries(b.args ?? {}).map(([k, v]) => [k, String(v)])),
  };
}

/** serviceConnect is whether Copilot puts the service in Service Connect (`network.connect`). */
const serviceConnect = (m: Service): boolean => {
  const c = m.network?.connect;
  return c === true || (typeof c === "object" && c.alias !== undefined);
};

/** albRules are the load balancer's listener rules of a service: the main one and the others. */
function albRules(m: Service) {
  const http = m.http;
  if (http === undefined || typeof http === "boolean") return [];
  return [http, ...(http.additional_rules ?? [])];
}

test("the workspace names the application", (t) => {
  t.is(readFileSync(join(COPILOT, ".workspace"), "utf8").trim(), "application: connect-chat");
});

test("every Copilot manifest is valid for its type, with only fields Copilot accepts", (t) => {
  const files = [
    ...WORKLOADS.map((w) => join(w, "manifest.yml")),
    ...ENVIRONMENTS.map((e) => join("environments", e, "manifest.yml")),
  ];
  const problems = files.flatMap((f) =>
    manifestProblems(readYaml(join(COPILOT, f))).map((p) => `copilot/${f}: ${p}`),
  );
  t.deepEqual(problems, []);
});

test("every service has a manifest of the right kind", (t) => {
  t.deepEqual([...SERVICES].sort(), ["gateway", "messaging", "notification", "persistence"]);
  for (const s of SERVICES) {
    const m = manifest(s);
    t.is(m.name, s, "a manifest's name is its directory's");
    t.is(m.type, s === "gateway" ? "Load Balanced Web Service" : "Backend Service", s);
  }
  for (const w of WORKLOADS) t.is(workload(w).name, w, "a manifest's name is its directory's");
});

test("every service's image builds from the Dockerfile for that service, on the port it listens on", (t) => {
  for (const s of SERVICES) {
    const m = manifest(s);
    const build = dockerBuild(m.image.build);
    if (build === undefined) {
      t.fail(`${s}: the image is not built from this repository`);
      continue;
    }
    t.true(existsSync(join(ROOT, build.dockerfile)), `${s}: Dockerfile exists`);
    t.is(build.context, ".", `${s}: builds from the repository root`);
    t.is(build.args.SERVICE, s);
    t.true(existsSync(join(ROOT, "services", s, "main.ts")), `${s}: its entry point exists`);
    t.is<number | undefined, number | undefined>(
      m.image.port,
      DEFAULT_PORTS[s],
      `${s}: image port is the service's port`,
    );
    t.is<number | undefined, number | undefined>(
      Number(m.variables?.PORT),
      m.image.port,
      `${s}: PORT matches the image port`,
    );
  }
});

test("every job's image builds the job's entry point from the same Dockerfile", (t) => {
  for (const w of WORKLOADS) {
    const m = workload(w);
    if (m.type !== "Scheduled Job") continue;
    const build = dockerBuild(m.image.build);
    t.truthy(build, `${w}: the image is built from this repository`);
    t.is(build?.dockerfile, "Dockerfile", w);
    t.is(build?.context, ".", w);
    t.true(
      existsSync(join(ROOT, "services", build?.args.SERVICE ?? "", "main.ts")),
      `${w}: services/${build?.args.SERVICE}/main.ts exists`,
    );
  }
});

test("every variable and secret a manifest sets is one the service or job reads", (t) => {
  for (const w of WORKLOADS) {
    const m = workload(w);
    t.true(Object.hasOwn(VARIABLES, w), `${w}: VARIABLES lists what it reads`);
    const known = new Set(VARIABLES[w as keyof typeof VARIABLES]);
    const names = [
      ...Object.keys(m.variables ?? {}),
      ...Object.keys(m.secrets ?? {}),
      ...Object.values(m.environments ?? {}).flatMap((e) => [
        ...Object.keys(e.variables ?? {}),
        ...Object.keys(e.secrets ?? {}),
      ]),
    ];
    for (const name of names) t.true(known.has(name), `${w}: ${name} is not read by ${w}`);
    // Copilot ignores the overrides of an environment that does not exist: a typo'd name there
    // silently deploys the defaults.
    for (const env of Object.keys(m.environments ?? {}))
      t.true(ENVIRONMENTS.includes(env), `${w}: environments.${env} is not an environment`);
  }
});

test("every service gets the internal keys it needs, each its own, and the names npm run internal-keys makes", (t) => {
  const made = new Set(
    Object.keys(
      parseYaml(
        execFileSync("node", ["scripts/internal-keys.ts", "us-east-1"], {
          cwd: ROOT,
          encoding: "utf8",
        }),
      ) as Record<string, unknown>,
    ),
  );
  const keyOwners = new Map<string, string>();
  for (const s of SERVICES) {
    const secrets = manifest(s).secrets ?? {};
    const needs = NEEDS[s] ?? { key: false, peers: false };
    t.is("INTERNAL_AUTH_KEY" in secrets, needs.key, `${s}: INTERNAL_AUTH_KEY`);
    t.is("INTERNAL_AUTH_PEERS" in secrets, needs.peers, `${s}: INTERNAL_AUTH_PEERS`);
    for (const name of ["INTERNAL_AUTH_KEY", "INTERNAL_AUTH_PEERS"] as const) {
      const value = secrets[name];
      if (typeof value !== "string") continue;
      const secret = value.split("/").at(-1) ?? "";
      t.true(made.has(secret), `${s}: npm run internal-keys makes no ${secret}`);
      if (name === "INTERNAL_AUTH_KEY") {
        t.is(keyOwners.get(secret), undefined, `${s} shares ${secret}`);
        keyOwners.set(secret, s);
      }
    }
  }
});

/** The manifest/template placeholder `${name}`. */
const placeholder = (name: string): string => `\${${name}}`;

test("manifests reference only exports the environment addons produce, and only shell variables the deploy docs set", (t) => {
  const exports = envAddonExports().map((p) =>
    p
      // CloudFormation's ${App}/${Env} are Copilot's predefined manifest variables.
      .replace(placeholder("App"), placeholder("COPILOT_APPLICATION_NAME"))
      .replace(placeholder("Env"), placeholder("COPILOT_ENVIRONMENT_NAME")),
  );
  const deployDoc = readFileSync(join(ROOT, "docs/deploy.md"), "utf8");
  const files = [
    ...WORKLOADS.map((w) => join(w, "manifest.yml")),
    ...ENVIRONMENTS.map((e) => join("environments", e, "manifest.yml")),
  ];
  for (const f of files) {
    // Copilot substitutes ${VAR} (not \${VAR}) from the shell running `copilot deploy`, and
    // refuses to deploy if it is unset (manifest/interpolate.go); only its two predefined ones
    // are always set, so any other must be one docs/deploy.md has the operator export.
    const text = readFileSync(join(COPILOT, f), "utf8");
    for (const [, name = ""] of text.matchAll(/(?<!\\)\$\{([_a-zA-Z][_a-zA-Z0-9]*)\}/g)) {
      if (name === "COPILOT_APPLICATION_NAME" || name === "COPILOT_ENVIRONMENT_NAME") continue;
      t.true(
        new RegExp(`\\b${name}\\b`).test(deployDoc),
        `copilot/${f}: \${${name}} must be set when deploying, but docs/deploy.md never mentions it`,
      );
    }
  }
  for (const w of WORKLOADS) {
    const m = workload(w);
    const refs = [...Object.values(m.variables ?? {}), ...Object.values(m.secrets ?? {})].flatMap(
      (v) => (typeof v === "object" && "from_cfn" in v ? [v.from_cfn] : []),
    );
    for (const ref of refs)
      t.true(
        exports.some((p) => exportMatches(p, ref)),
        `${w}: nothing exports ${ref}`,
      );
    for (const [name, value] of Object.entries(m.secrets ?? {})) {
      if (typeof value === "string") {
        // `copilot secret init --name X` stores X here; a per-service secret adds the service.
        const secret = name === "INTERNAL_AUTH_KEY" ? `${name}_${w.toUpperCase()}` : name;
        t.is(
          value,
          `/copilot/\${COPILOT_APPLICATION_NAME}/\${COPILOT_ENVIRONMENT_NAME}/secrets/${secret}`,
        );
      }
    }
  }
});

test("services reach each other at the Service Connect names and ports they listen on", (t) => {
  for (const s of SERVICES) {
    const m = manifest(s);
    for (const [name, value] of Object.entries(m.variables ?? {})) {
      if (!name.endsWith("_URL") || typeof value !== "string" || !value.startsWith("http://"))
        continue;
      const u = new URL(value);
      t.true(SERVICES.includes(u.hostname), `${s}: ${name} names a service`);
      t.is<number | undefined, number | undefined>(
        Number(u.port),
        DEFAULT_PORTS[u.hostname],
        `${s}: ${name} uses ${u.hostname}'s port`,
      );
      t.true(serviceConnect(manifest(u.hostname)), `${u.hostname} is in Service Connect`);
    }
  }
});

test("health checks hit the path every service serves", (t) => {
  for (const s of SERVICES) {
    const m = manifest(s);
    if (m.type === "Load Balanced Web Service") {
      const rules = albRules(m);
      t.true(rules.length > 0, `${s}: has a load balancer`);
      for (const rule of rules) {
        // HealthCheckArgsOrString: a path, or {path}; Copilot's default path is "/".
        const hc = rule.healthcheck;
        t.is(typeof hc === "string" ? hc : (hc?.path ?? "/"), "/healthz", `${s}: ${rule.path}`);
      }
    } else
      t.true(
        (m.image.healthcheck?.command ?? [])
          .join(" ")
          .includes(`127.0.0.1:${m.image.port}/healthz`),
        s,
      );
  }
});

test("the gateway's drain fits in the load balancer's deregistration delay and the stop timeout", (t) => {
  const m = parseAs(valuesOnly.loadBalancedWebService, join(COPILOT, "gateway/manifest.yml"));
  const drainSeconds = Number(m.variables?.DRAIN_MS) / 1000;
  const pollSeconds = 2;
  const rules = albRules(m);
  t.true(rules.length > 0, "the gateway has a load balancer");
  for (const rule of rules)
    t.true(
      // Copilot's default deregistration delay is 60s (DefaultDeregistrationDelay).
      durationSeconds(rule.deregistration_delay ?? "60s") >= drainSeconds + pollSeconds + 2,
      `${rule.path}: deregistration delay ≥ drain + poll + margin`,
    );
  const stop = m.taskdef_overrides?.find(
    (o) => o.path === "ContainerDefinitions[0].StopTimeout",
  )?.value;
  t.true(Number(stop) >= drainSeconds, "stop timeout ≥ drain");
});

test("each region's services read the other regions' mirrored topics", (t) => {
  for (const s of SERVICES) {
    for (const [env, settings] of Object.entries(manifest(s).environments ?? {})) {
      const value = settings.variables?.CHAT_PEER_REGIONS;
      if (value === undefined) continue;
      const peers = String(value)
        .split(",")
        .map((p) => p.split("=")[0]?.trim());
      t.deepEqual(peers.sort(), ENVIRONMENTS.filter((e) => e !== env).sort(), `${s} in ${env}`);
    }
  }
  // Where the peers come from a parameter instead, every workload reads the same one, so the
  // topics the job creates are the ones the services subscribe to.
  const sources = new Set(
    WORKLOADS.flatMap((w) => {
      const secret = workload(w).secrets?.CHAT_PEER_REGIONS;
      return secret === undefined ? [] : [JSON.stringify(secret)];
    }),
  );
  t.true(sources.size <= 1, `CHAT_PEER_REGIONS comes from one place: ${[...sources].join(", ")}`);
});

test("environments are one per region with their own address space", (t) => {
  const cidrs: string[] = [];
  for (const env of ENVIRONMENTS) {
    const m = parseAs(valuesOnly.environment, join(COPILOT, "environments", env, "manifest.yml"));
    t.is(m.name, env);
    const vpc = m.network?.vpc;
    const cidr = vpc?.cidr;
    if (cidr === undefined) {
      t.fail(`${env}: the VPC's CIDR is set`);
      continue;
    }
    cidrs.push(cidr);
    for (const subnet of [...(vpc?.subnets?.public ?? []), ...(vpc?.subnets?.private ?? [])]) {
      t.true(inside(subnet.cidr ?? "", cidr), `${env}: ${subnet.cidr} is inside ${cidr}`);
      t.true(subnet.az?.startsWith(env), `${env}: ${subnet.az} is in the region`);
    }
  }
  for (let i = 0; i < cidrs.length; i++) {
    for (let j = i + 1; j < cidrs.length; j++) {
      t.false(
        inside(cidrs[i] as string, cidrs[j] as string) ||
          inside(cidrs[j] as string, cidrs[i] as string),
        "VPC CIDRs are distinct",
      );
    }
  }
});

test("the environment override raises the load balancer idle timeout above the heartbeat window", (t) => {
  const patches = z
    .array(
      z.strictObject({
        op: z.enum(["add", "replace", "remove"]),
        path: z.string(),
        value: z.unknown(),
      }),
    )
    .parse(readYaml(join(COPILOT, "environments/overrides/cfn.patches.yml")) as unknown);
  const patch = patches.find((p) =>
    p.path.startsWith("/Resources/PublicLoadBalancer/Properties/LoadBalancerAttributes"),
  );
  t.truthy(patch);
  const value = patch?.value as { Key: string; Value: string };
  t.is(value.Key, "idle_timeout.timeout_seconds");
  const heartbeatSeconds =
    loadGatewayConfig({ AUTH_JWKS_URL: "https://idp.example/jwks" }).heartbeatIntervalMs / 1000;
  t.true(Number(value.Value) > 3 * heartbeatSeconds, "longer than the server's silence limit");
});

// ---------------------------------------------------------------------------------------------
// The schema itself, on manifests made up here (the project's own are in flux).

const WEB = {
  name: "web",
  type: "Load Balanced Web Service",
  image: {
    build: { dockerfile: "Dockerfile", context: ".", args: { SERVICE: "web" } },
    port: 8080,
  },
  http: {
    path: "/",
    healthcheck: {
      path: "/healthz",
      healthy_threshold: 2,
      unhealthy_threshold: 3,
      interval: "10s",
      timeout: "5s",
      grace_period: "30s",
    },
    deregistration_delay: "30s",
    stickiness: false,
  },
  cpu: 1024,
  memory: 2048,
  count: { range: "2-20", cpu_percentage: 60 },
  exec: true,
  network: { connect: true },
  variables: { PORT: 8080, FLAG: true, REF: { from_cfn: "app-env-Export" } },
  secrets: { KEY: "/copilot/app/env/secrets/KEY" },
};
const BACKEND = {
  name: "api",
  type: "Backend Service",
  image: {
    build: "Dockerfile",
    port: 8081,
    healthcheck: { command: ["CMD", "true"], interval: "10s", retries: 3, timeout: "5s" },
  },
  count: 2,
};
const JOB = {
  name: "kafka-topics",
  type: "Scheduled Job",
  on: { schedule: "none" },
  retries: 3,
  timeout: "10m",
  image: { build: { dockerfile: "Dockerfile", context: ".", args: { SERVICE: "jobs/x" } } },
};
const ENV = {
  name: "us-east-1",
  type: "Environment",
  network: {
    vpc: {
      cidr: "10.10.0.0/16",
      subnets: {
        public: [
          { cidr: "10.10.0.0/24", az: "us-east-1a" },
          { cidr: "10.10.1.0/24", az: "us-east-1b" },
        ],
        private: [
          { cidr: "10.10.8.0/21", az: "us-east-1a" },
          { cidr: "10.10.16.0/21", az: "us-east-1b" },
        ],
      },
    },
  },
  observability: { container_insights: true },
};

/** edit returns a copy of a manifest with the value at path set (or removed, for undefined). */
function edit(m: object, path: readonly (string | number)[], value: unknown): object {
  const copy = structuredClone(m) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string | number, unknown>;
  }
  const last = path.at(-1) as string | number;
  if (value === undefined) Reflect.deleteProperty(node, last);
  else node[last] = value;
  return copy;
}

test("the Copilot schema accepts the made-up manifests the other cases start from", (t) => {
  for (const m of [WEB, BACKEND, JOB, ENV]) t.deepEqual(manifestProblems(m), [], m.type);
});

test("the Copilot schema refuses realistic defects, saying where and why", (t) => {
  const cases: [string, object, string][] = [
    [
      "a misspelled field",
      edit(WEB, ["http", "healthcheck", "healty_threshold"], 2),
      "http.healthcheck.healty_threshold: unknown field",
    ],
    ["an unknown top-level field", { ...WEB, replicas: 3 }, "replicas: unknown field"],
    ["a field of another manifest kind", { ...BACKEND, nlb: { port: 443 } }, "nlb: unknown field"],
    ["a string for a number", edit(WEB, ["cpu"], "1 vCPU"), "cpu:"],
    [
      "a number for a duration",
      edit(WEB, ["http", "deregistration_delay"], 30),
      "http.deregistration_delay:",
    ],
    [
      "a duration without a unit",
      edit(WEB, ["count", "cooldown"], { in: "60" }),
      "count.cooldown.in:",
    ],
    ["a bad platform", edit(WEB, ["platform"], "linux/amd46"), "platform: platform must be one of"],
    [
      "a bad tracing vendor",
      edit(WEB, ["observability"], { tracing: "xray" }),
      "observability.tracing:",
    ],
    ["a bad HTTP version", edit(WEB, ["http", "version"], "HTTP3"), "http.version:"],
    [
      "a bad placement",
      edit(WEB, ["network", "vpc"], { placement: "isolated" }),
      "network.vpc.placement:",
    ],
    [
      "a bad deployment strategy",
      edit(WEB, ["deployment", "rolling"], "blue-green"),
      "deployment.rolling:",
    ],
    [
      "a bad source IP",
      edit(WEB, ["http", "allowed_source_ips"], ["10.0.0.0"]),
      "http.allowed_source_ips[0]:",
    ],
    [
      "a misspelled alias field",
      edit(WEB, ["http", "alias"], [{ nam: "a.example.com" }]),
      "http.alias[0].nam: unknown field",
    ],
    ["an inverted range", edit(WEB, ["count", "range"], "20-2"), "count.range:"],
    ["a percentage over 100", edit(WEB, ["count", "cpu_percentage"], 160), "count.cpu_percentage:"],
    [
      "a range without a scaling metric",
      edit(WEB, ["count"], { range: "2-20" }),
      "count: must specify at least one of",
    ],
    [
      "a cooldown without autoscaling",
      edit(WEB, ["count"], { cooldown: { in: "60s" } }),
      "count: must specify at least one of",
    ],
    ["spot with autoscaling", edit(WEB, ["count", "spot"], 2), 'count: "spot" and'],
    [
      "a retention CloudWatch does not offer",
      edit(WEB, ["logging"], { retention: 45 }),
      "logging.retention: AWS:",
    ],
    ["a task size Fargate does not offer", edit(WEB, ["memory"], 1024), "memory: AWS: Fargate"],
    [
      "a threshold out of AWS's range",
      edit(WEB, ["http", "healthcheck", "healthy_threshold"], 1),
      "http.healthcheck.healthy_threshold:",
    ],
    [
      "a grace period on an additional rule",
      edit(
        WEB,
        ["http", "additional_rules"],
        [{ path: "/x", healthcheck: { grace_period: "30s" } }],
      ),
      'http.additional_rules[0].healthcheck: "grace_period"',
    ],
    [
      "an additional rule without a path",
      edit(WEB, ["http", "additional_rules"], [{ stickiness: true }]),
      'http.additional_rules[0]: "path"',
    ],
    [
      "a hosted zone without an alias",
      edit(WEB, ["http", "hosted_zone"], "Z123"),
      'http: "alias" must be specified',
    ],
    [
      "both build and location",
      edit(WEB, ["image", "location"], "nginx:latest"),
      "image.location:",
    ],
    [
      "no image at all",
      edit(BACKEND, ["image", "build"], undefined),
      'image: exactly one of "build" and "location"',
    ],
    [
      "a target container that does not exist",
      edit(WEB, ["http", "target_container"], "envoy"),
      'http: target container "envoy" doesn\'t exist',
    ],
    [
      "depends_on a container that does not exist",
      edit(WEB, ["image", "depends_on"], { envoy: "start" }),
      "image.depends_on: container envoy does not exist",
    ],
    [
      "an overridden container name",
      edit(WEB, ["taskdef_overrides"], [{ path: "ContainerDefinitions[0].Name", value: "x" }]),
      "taskdef_overrides[0].path:",
    ],
    [
      "queue scaling outside a Worker Service",
      edit(WEB, ["count", "queue_delay"], { acceptable_latency: "1m" }),
      "count.queue_delay:",
    ],
    ["http: false on a Backend Service", edit(BACKEND, ["http"], false), "http:"],
    [
      "request scaling without a load balancer",
      edit(BACKEND, ["count"], { range: "1-3", requests: 100 }),
      'count: "http" must be specified',
    ],
    [
      "http: false without an NLB",
      edit(WEB, ["http"], false),
      'http: must specify at least one of "http" or "nlb"',
    ],
    ["a bad NLB protocol", edit(WEB, ["nlb"], { port: "443/http" }), "nlb.port:"],
    [
      "a misspelled field in an environment override",
      edit(WEB, ["environments", "us-east-1", "cpu_percent"], 50),
      "environments.us-east-1.cpu_percent: unknown field",
    ],
    [
      "an override that breaks the merged manifest",
      edit(WEB, ["environments", "eu-west-1", "count"], { cpu_percentage: 50, spot: 1 }),
      'count: "spot" and',
    ],
    ["a bad schedule", edit(JOB, ["on", "schedule"], "every day"), "on.schedule:"],
    ["@every in seconds", edit(JOB, ["on", "schedule"], "@every 90s"), "on.schedule:"],
    ["a fractional timeout", edit(JOB, ["timeout"], "1.5s"), "timeout:"],
    ["autoscaling on a job", edit(JOB, ["count"], { range: "1-2", cpu_percentage: 50 }), "count:"],
    ["a port on a job's image", edit(JOB, ["image", "port"], 80), "image.port: unknown field"],
    [
      "a misspelled environment field",
      edit(ENV, ["observability"], { container_insight: true }),
      "observability.container_insight: unknown field",
    ],
    [
      "a bad certificate ARN",
      edit(ENV, ["http", "public", "certificates"], ["acm/123"]),
      "http.public.certificates[0]: expected an ARN",
    ],
    [
      "subnets in different zones",
      edit(ENV, ["network", "vpc", "subnets", "private", 1, "az"], "us-east-1c"),
      "network.vpc.subnets: public subnets and private subnets do not span the same availability zones",
    ],
    [
      "a subnet with both id and cidr",
      edit(ENV, ["network", "vpc", "subnets", "public", 0, "id"], "subnet-1"),
      "network.vpc.subnets.public[0]:",
    ],
    [
      "a CDN certificate outside us-east-1",
      edit(ENV, ["cdn"], { certificate: "arn:aws:acm:eu-west-1:1:certificate/x" }),
      "cdn.certificate:",
    ],
  ];
  for (const [name, m, expected] of cases) {
    const problems = manifestProblems(m);
    t.true(
      problems.some((p) => p.startsWith(expected)),
      `${name}: expected a problem starting "${expected}", got:\n  ${problems.join("\n  ")}`,
    );
  }
  t.deepEqual(manifestProblems({ ...WEB, type: "Load Balanced Web Servce" }), [
    'type: "Load Balanced Web Servce" is not one of Load Balanced Web Service, Backend Service, Scheduled Job, Environment (the kinds this schema covers)',
  ]);
});

test("the Copilot schema accepts valid fields the project does not use yet", (t) => {
  const cases: [string, object][] = [
    ["an alias", edit(WEB, ["http", "alias"], "chat.example.com")],
    [
      "aliases",
      edit(
        WEB,
        ["http", "alias"],
        ["chat.example.com", `${placeholder("COPILOT_ENVIRONMENT_NAME")}.chat.example.com`],
      ),
    ],
    [
      "aliases with hosted zones",
      edit(
        WEB,
        ["http", "alias"],
        [{ name: "chat.example.com", hosted_zone: "Z0873220N255IR3MTNR4" }],
      ),
    ],
    ["a health check path", edit(WEB, ["http", "healthcheck"], "/healthz")],
    [
      "autoscaling in full",
      edit(WEB, ["count"], {
        range: { min: 2, max: 20, spot_from: 10 },
        cooldown: { in: "15m", out: "60s" },
        cpu_percentage: { value: 70, cooldown: { in: "2m", out: "1m30s" } },
        memory_percentage: 80,
        requests: 1000,
        response_time: "500ms",
      }),
    ],
    ["a fixed count", edit(WEB, ["count"], 3)],
    ["Fargate Spot", edit(WEB, ["count"], { spot: 2 })],
    ["log retention", edit(WEB, ["logging"], { retention: 30 })],
    [
      "FireLens",
      edit(WEB, ["logging"], { destination: { Name: "cloudwatch" }, enableMetadata: true }),
    ],
    ["tracing", edit(WEB, ["observability"], { tracing: "awsxray" })],
    [
      "additional rules",
      edit(
        WEB,
        ["http", "additional_rules"],
        [
          {
            path: "/admin",
            healthcheck: { path: "/healthz", success_codes: "200-299", port: 9080 },
            alias: "admin.example.com",
            allowed_source_ips: ["10.0.0.0/16"],
            target_port: 9080,
            deregistration_delay: "30s",
            version: "http2",
          },
        ],
      ),
    ],
    ["the ALB's other options", edit(WEB, ["http", "redirect_to_https"], false)],
    [
      "an imported ALB",
      edit(WEB, ["http", "alb"], "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/x/y"),
    ],
    [
      "private placement and security groups",
      edit(WEB, ["network"], {
        connect: { alias: "web" },
        vpc: { placement: "private", security_groups: { groups: ["sg-1"], deny_default: true } },
      }),
    ],
    [
      "subnets by tag",
      edit(WEB, ["network", "vpc"], { placement: { subnets: { from_tags: { tier: ["app"] } } } }),
    ],
    [
      "a deployment strategy and alarms",
      edit(WEB, ["deployment"], { rolling: "recreate", rollback_alarms: { cpu_utilization: 70 } }),
    ],
    ["ARM", edit(WEB, ["platform"], { osfamily: "linux", architecture: "arm64" })],
    [
      "storage",
      edit(WEB, ["storage"], {
        ephemeral: 50,
        readonly_fs: true,
        volumes: { data: { efs: true, path: "/data" } },
      }),
    ],
    [
      "a sidecar",
      edit(WEB, ["sidecars"], {
        nginx: {
          port: "80/tcp",
          image: "public.ecr.aws/nginx/nginx:latest",
          depends_on: { web: "start" },
        },
      }),
    ],
    ["exec as a map", edit(WEB, ["exec"], { enable: false })],
    ["a Secrets Manager secret", edit(WEB, ["secrets", "DB"], { secretsmanager: "prod/db" })],
    [
      "an entrypoint and command",
      { ...WEB, entrypoint: "/bin/sh -c", command: ["node", "main.ts"] },
    ],
    [
      "SNS topics",
      edit(WEB, ["publish"], {
        topics: [{ name: "events", fifo: { content_based_deduplication: true } }],
      }),
    ],
    [
      "an NLB instead of the ALB",
      { ...edit(WEB, ["http"], false), nlb: { port: "443/tls", healthcheck: { port: 8080 } } },
    ],
    ["null, which YAML means as unset", { ...WEB, secrets: null }],
    [
      "per-environment overrides of either form",
      edit(WEB, ["environments"], {
        "us-east-1": { count: { spot: 2 }, http: { alias: [{ name: "us.example.com" }] } },
        "eu-west-1": { count: 4, cpu: 2048, memory: 4096, variables: { LOG_LEVEL: "debug" } },
      }),
    ],
    ["an interpolated value", edit(WEB, ["http", "deregistration_delay"], placeholder("DELAY"))],
    [
      "an internal ALB for a Backend Service",
      edit(BACKEND, ["http"], { path: "/", alias: "api.internal.example.com" }),
    ],
    [
      "scaling on requests behind it",
      { ...edit(BACKEND, ["http"], { path: "/" }), count: { range: "1-3", requests: 100 } },
    ],
    [
      "an image location",
      edit(BACKEND, ["image"], { location: "public.ecr.aws/nginx/nginx:latest" }),
    ],
    ["a cron schedule", edit(JOB, ["on", "schedule"], "0 9 * * 1-5")],
    ["a rate schedule", edit(JOB, ["on", "schedule"], "@every 30m")],
    ["an AWS schedule", edit(JOB, ["on", "schedule"], "rate(5 minutes)")],
    ["a preset schedule", edit(JOB, ["on", "schedule"], "@daily")],
    [
      "a job's environment override",
      edit(JOB, ["environments", "us-east-1", "on", "schedule"], "@hourly"),
    ],
    [
      "a certificate",
      edit(
        ENV,
        ["http", "public", "certificates"],
        ["arn:aws:acm:us-east-1:111122223333:certificate/x"],
      ),
    ],
    [
      "an interpolated certificate",
      edit(ENV, ["http", "public", "certificates"], [placeholder("CHAT_CERTIFICATE_ARN")]),
    ],
    ["internal ALB ingress", edit(ENV, ["http", "private"], { ingress: { vpc: true } })],
    [
      "public ALB source IPs",
      edit(ENV, ["http", "public", "ingress"], { source_ips: ["10.0.0.0/8"] }),
    ],
    [
      "access logs",
      edit(ENV, ["http", "public", "access_logs"], { bucket_name: "logs", prefix: "alb" }),
    ],
    ["VPC flow logs", edit(ENV, ["network", "vpc", "flow_logs"], { retention: 14 })],
    [
      "security group rules",
      edit(ENV, ["network", "vpc", "security_group"], {
        ingress: [{ cidr: "10.0.0.0/8", ports: "9000-9100", ip_protocol: "tcp" }],
        egress: [{ cidr: "0.0.0.0/0", ports: 443, ip_protocol: "tcp" }],
      }),
    ],
    [
      "a CDN",
      edit(ENV, ["cdn"], {
        certificate: "arn:aws:acm:us-east-1:1:certificate/x",
        terminate_tls: true,
      }),
    ],
  ];
  for (const [name, m] of cases) t.deepEqual(manifestProblems(m), [], name);
});

function inside(inner: string, outer: string): boolean {
  const parse = (c: string) => {
    const [ip = "", bits = "0"] = c.split("/");
    const n = ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
    return { n, bits: Number(bits) };
  };
  const a = parse(inner);
  const b = parse(outer);
  if (a.bits < b.bits) return false;
  const mask = b.bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - b.bits);
  return (a.n & mask) >>> 0 === (b.n & mask) >>> 0;
}
