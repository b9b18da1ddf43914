import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
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
import { COPILOT, ENVIRONMENTS, envAddonExports, readYaml, SERVICES } from "./support.ts";

// The manifest fields this project uses, as Copilot (v1.34) defines them; anything else is a typo.
const duration = z.string().regex(/^\d+(ms|s|m|h)$/);
const fromCfn = z.strictObject({ from_cfn: z.string() });
const variables = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), fromCfn]));
const secrets = z.record(
  z.string(),
  z.union([z.string(), fromCfn, z.strictObject({ secretsmanager: z.string() })]),
);
const build = z.strictObject({
  dockerfile: z.string(),
  context: z.string(),
  args: z.record(z.string(), z.string()),
});
const count = z.strictObject({
  range: z.string().regex(/^\d+-\d+$/),
  cpu_percentage: z.number().int().min(1).max(100),
  memory_percentage: z.number().int().min(1).max(100).optional(),
});
const common = {
  name: z.string(),
  cpu: z.number().int(),
  memory: z.number().int(),
  count,
  exec: z.boolean(),
  network: z.strictObject({ connect: z.boolean() }),
  variables,
  secrets: secrets.optional(),
  taskdef_overrides: z.array(z.strictObject({ path: z.string(), value: z.unknown() })).optional(),
  environments: z
    .record(
      z.string(),
      z.strictObject({ variables: variables.optional(), secrets: secrets.optional() }),
    )
    .optional(),
};
const webService = z.strictObject({
  ...common,
  type: z.literal("Load Balanced Web Service"),
  image: z.strictObject({ build, port: z.number().int() }),
  http: z.strictObject({
    path: z.string(),
    healthcheck: z.strictObject({
      path: z.string(),
      healthy_threshold: z.number().int(),
      unhealthy_threshold: z.number().int(),
      interval: duration,
      timeout: duration,
      grace_period: duration,
    }),
    deregistration_delay: duration,
    stickiness: z.boolean(),
  }),
});
const backendService = z.strictObject({
  ...common,
  type: z.literal("Backend Service"),
  image: z.strictObject({
    build,
    port: z.number().int(),
    healthcheck: z.strictObject({
      command: z.array(z.string()),
      interval: duration,
      retries: z.number().int(),
      timeout: duration,
      start_period: duration,
    }),
  }),
});
const environment = z.strictObject({
  name: z.string(),
  type: z.literal("Environment"),
  network: z.strictObject({
    vpc: z.strictObject({
      cidr: z.string(),
      subnets: z.strictObject({
        public: z.array(z.strictObject({ cidr: z.string(), az: z.string() })),
        private: z.array(z.strictObject({ cidr: z.string(), az: z.string() })),
      }),
    }),
  }),
  observability: z.strictObject({ container_insights: z.boolean() }),
});

const seconds = (d: string) => {
  const [, n, unit] = /^(\d+)(ms|s|m|h)$/.exec(d) ?? [];
  return Number(n) * ({ ms: 0.001, s: 1, m: 60, h: 3600 }[unit as "s"] ?? Number.NaN);
};

const DEFAULT_PORTS: Record<string, number> = {
  gateway: loadGatewayConfig({ AUTH_JWKS_URL: "https://idp.example/jwks" }).port,
  messaging: loadMessagingConfig({}).port,
  notification: loadNotificationConfig({}).port,
  persistence: loadPersistenceConfig({}).port,
};

function manifest(service: string) {
  const raw = readYaml(join(COPILOT, service, "manifest.yml"));
  return raw.type === "Load Balanced Web Service"
    ? webService.parse(raw)
    : backendService.parse(raw);
}

test("the workspace names the application", (t) => {
  t.is(readFileSync(join(COPILOT, ".workspace"), "utf8").trim(), "application: connect-chat");
});

test("every service has a manifest of the right kind, using only known fields", (t) => {
  t.deepEqual([...SERVICES].sort(), ["gateway", "messaging", "notification", "persistence"]);
  for (const s of SERVICES) {
    const m = manifest(s);
    t.is(m.name, s, "a manifest's name is its directory's");
    t.is(m.type, s === "gateway" ? "Load Balanced Web Service" : "Backend Service", s);
  }
});

test("every service's image builds from the Dockerfile for that service, on the port it listens on", (t) => {
  for (const s of SERVICES) {
    const m = manifest(s);
    t.true(
      existsSync(join(ROOT, m.image.build.context, m.image.build.dockerfile)),
      `${s}: Dockerfile exists`,
    );
    t.is(m.image.build.args.SERVICE, s);
    t.true(existsSync(join(ROOT, "services", s, "main.ts")), `${s}: its entry point exists`);
    t.is<number | undefined, number | undefined>(
      m.image.port,
      DEFAULT_PORTS[s],
      `${s}: image port is the service's port`,
    );
    t.is(Number(m.variables.PORT), m.image.port, `${s}: PORT matches the image port`);
  }
});

test("every variable and secret a manifest sets is one the service reads", (t) => {
  for (const s of SERVICES) {
    const m = manifest(s);
    const known = new Set(VARIABLES[s as keyof typeof VARIABLES]);
    const names = [
      ...Object.keys(m.variables),
      ...Object.keys(m.secrets ?? {}),
      ...Object.values(m.environments ?? {}).flatMap((e) => [
        ...Object.keys(e.variables ?? {}),
        ...Object.keys(e.secrets ?? {}),
      ]),
    ];
    for (const name of names)
      t.true(known.has(name), `${s}: ${name} is not read by the ${s} service`);
    t.deepEqual(
      Object.keys(m.environments ?? {}).sort(),
      [...ENVIRONMENTS].sort(),
      `${s}: per-environment settings`,
    );
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

test("manifests reference only exports the environment addons produce, and only Copilot's predefined variables", (t) => {
  const exports = envAddonExports().map((p) =>
    p
      // CloudFormation's ${App}/${Env} are Copilot's predefined manifest variables.
      .replace(placeholder("App"), placeholder("COPILOT_APPLICATION_NAME"))
      .replace(placeholder("Env"), placeholder("COPILOT_ENVIRONMENT_NAME")),
  );
  for (const s of SERVICES) {
    const text = readFileSync(join(COPILOT, s, "manifest.yml"), "utf8");
    for (const [, name] of text.matchAll(/\$\{([A-Z_]+)\}/g)) {
      t.true(
        name === "COPILOT_APPLICATION_NAME" || name === "COPILOT_ENVIRONMENT_NAME",
        `${s}: \${${name}} is not predefined in manifests (deploys would fail)`,
      );
    }
    const m = manifest(s);
    const refs = [...Object.values(m.variables), ...Object.values(m.secrets ?? {})].flatMap((v) =>
      typeof v === "object" && "from_cfn" in v ? [v.from_cfn] : [],
    );
    for (const ref of refs)
      t.true(
        exports.some((p) => exportMatches(p, ref)),
        `${s}: nothing exports ${ref}`,
      );
    for (const [name, value] of Object.entries(m.secrets ?? {})) {
      if (typeof value === "string") {
        // `copilot secret init --name X` stores X here; a per-service secret adds the service.
        const secret = name === "INTERNAL_AUTH_KEY" ? `${name}_${s.toUpperCase()}` : name;
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
    for (const [name, value] of Object.entries(m.variables)) {
      if (!name.endsWith("_URL") || typeof value !== "string" || !value.startsWith("http://"))
        continue;
      const u = new URL(value);
      t.true(SERVICES.includes(u.hostname), `${s}: ${name} names a service`);
      t.is<number | undefined, number | undefined>(
        Number(u.port),
        DEFAULT_PORTS[u.hostname],
        `${s}: ${name} uses ${u.hostname}'s port`,
      );
      t.true(manifest(u.hostname).network.connect, `${u.hostname} is in Service Connect`);
    }
  }
});

test("health checks hit the path every service serves", (t) => {
  for (const s of SERVICES) {
    const m = manifest(s);
    if (m.type === "Load Balanced Web Service") t.is(m.http.healthcheck.path, "/healthz");
    else
      t.true(
        m.image.healthcheck.command.join(" ").includes(`127.0.0.1:${m.image.port}/healthz`),
        s,
      );
  }
});

test("the gateway's drain fits in the load balancer's deregistration delay and the stop timeout", (t) => {
  const m = webService.parse(readYaml(join(COPILOT, "gateway/manifest.yml")));
  const drainSeconds = Number(m.variables.DRAIN_MS) / 1000;
  const pollSeconds = 2;
  t.true(
    seconds(m.http.deregistration_delay) >= drainSeconds + pollSeconds + 2,
    "deregistration delay ≥ drain + poll + margin",
  );
  const stop = m.taskdef_overrides?.find(
    (o) => o.path === "ContainerDefinitions[0].StopTimeout",
  )?.value;
  t.true(Number(stop) >= drainSeconds, "stop timeout ≥ drain");
});

test("each region's services read the other regions' mirrored topics", (t) => {
  for (const s of SERVICES) {
    for (const [env, settings] of Object.entries(manifest(s).environments ?? {})) {
      const peers = String(settings.variables?.CHAT_PEER_REGIONS ?? "")
        .split(",")
        .map((p) => p.split("=")[0]?.trim());
      t.deepEqual(peers.sort(), ENVIRONMENTS.filter((e) => e !== env).sort(), `${s} in ${env}`);
    }
  }
});

test("environments are one per region with their own address space", (t) => {
  const cidrs: string[] = [];
  for (const env of ENVIRONMENTS) {
    const m = environment.parse(readYaml(join(COPILOT, "environments", env, "manifest.yml")));
    t.is(m.name, env);
    const vpc = m.network.vpc;
    cidrs.push(vpc.cidr);
    for (const subnet of [...vpc.subnets.public, ...vpc.subnets.private]) {
      t.true(inside(subnet.cidr, vpc.cidr), `${env}: ${subnet.cidr} is inside ${vpc.cidr}`);
      t.true(subnet.az.startsWith(env), `${env}: ${subnet.az} is in the region`);
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
