/**
 * Zod schemas for the AWS Copilot manifests this project deploys or may deploy: Load Balanced Web
 * Service, Backend Service, Scheduled Job and Environment.
 *
 * They are transcribed from Copilot's own source, so that a manifest field Copilot accepts is
 * accepted here and a typo or wrong value fails in `npm test` instead of at `copilot deploy` (or,
 * worse, not at all: Copilot decodes YAML non-strictly, so a misspelled field is silently ignored).
 *
 * Source: github.com/aws/copilot-cli, commit 4c858e718bc88449e29540993d8496ac81d7b419 (mainline,
 * 2024-03-25, `git describe`: v1.33.2-5-g4c858e718), the newest snapshot available to us; the
 * v1.34 tags were not in it, so fields added between that commit and v1.34.x are not covered
 * (none of the manifest files there changed between v1.33.2 and that commit). Files:
 *   internal/pkg/manifest/lb_web_svc.go, backend_svc.go, job.go, env.go, deprecated.go   (shapes)
 *   internal/pkg/manifest/http.go, svc.go, workload.go, workload_ecs.go, storage.go,
 *     rd_web_svc.go (Observability, ImageWithPort), union.go                      (shared types)
 *   internal/pkg/manifest/validate.go, validate_env.go                              (validations)
 *   internal/pkg/manifest/transform.go (how `environments` overrides merge, see `mergeOverride`)
 *   internal/pkg/deploy/cloudformation/stack/scheduled_job.go (schedule, timeout, retries)
 *   internal/pkg/docker/dockerengine/dockerengine.go (platform names)
 *
 * How Copilot's Go types map here:
 * - every struct is a strict object (unknown keys fail, which Copilot itself does not do);
 * - its "X or Y" types (custom UnmarshalYAML, `Union[Basic, Advanced]`) are `z.union`s;
 * - `time.Duration` fields take Go duration strings (`10s`, `1m30s`, `500ms`): yaml.v3 refuses a
 *   bare number there, and so do we;
 * - YAML `null` means "unset" to yaml.v3, so null-valued keys are dropped before parsing;
 * - Copilot substitutes `${VAR}` in string values from the deploying shell (interpolate.go; an
 *   unset variable fails the deploy), so a string holding one passes the value checks here: its
 *   value is only known at deploy time. Like Copilot, only strings are interpolated, so a number
 *   field written as `${CPU}` fails;
 * - Copilot validates a workload only after merging `environments.<env>` into it, so the fields
 *   it requires and its cross-field rules are checked on the manifest as deployed to each listed
 *   environment, and to any other environment (the manifest without overrides).
 *
 * Simplifications, all on the side of refusing:
 * - Plain string fields must be YAML strings; yaml.v3 would also stringify a number or boolean.
 *   Where a number is a realistic value (variables, build args, labels, ports, success codes)
 *   numbers and booleans are accepted.
 * - `name`, `type` and `image` (and, for a Load Balanced Web Service, `image.port` and `http`) are
 *   required at the top level, not just after the merge, so the types the tests use can rely on
 *   them; Copilot would accept them from every environment's override instead.
 * - Durations are unsigned (Go accepts `-5s`; every duration field here must be non-negative).
 * - A list field written as one `${VAR}` (which Copilot expands if the variable holds a JSON
 *   array) is refused: write the list in YAML.
 * Beyond Copilot's own checks (CloudFormation would refuse these at deploy time), marked `AWS:`
 * where applied: Fargate task sizes, health check and deregistration limits, log retention days.
 * Left out (not cheap or not decidable from the manifest): container dependency cycles, unique
 * exposed ports across containers, health check port protocols, SNS/SQS subscriptions (Worker
 * Service only), and whether an `http.alias` is covered by the app's domain or the environment's
 * certificates.
 */
import { z } from "zod";

// ---------------------------------------------------------------------------------------------
// Scalars

/** GO_DURATION is what Go's time.ParseDuration accepts, without a sign. */
const GO_DURATION = /^(?:0|(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$/u;
const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gu;
const UNIT_SECONDS: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  μs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

/** durationSeconds converts a Go duration string (`1m30s`) to seconds; NaN if it is not one. */
export function durationSeconds(d: string): number {
  if (!GO_DURATION.test(d)) return Number.NaN;
  let total = 0;
  for (const [, n, unit] of d.matchAll(DURATION_PART))
    total += Number(n) * (UNIT_SECONDS[unit ?? ""] ?? 0);
  return total;
}

/** INTERPOLATED matches a `${VAR}` that Copilot substitutes from the deploying shell. */
const INTERPOLATED = /(^|[^\\])\$\{[_a-zA-Z][_a-zA-Z0-9]*\}/;
/** isInterpolated tells whether a string's value is only known at deploy time. */
export const isInterpolated = (s: string): boolean => INTERPOLATED.test(s);
/** checked is a string that must satisfy ok, unless Copilot interpolates it at deploy time. */
const checked = (ok: (s: string) => boolean, message: string) =>
  z.string().refine((s) => isInterpolated(s) || ok(s), message);
/** matching is a string that must match re, unless Copilot interpolates it at deploy time. */
const matching = (re: RegExp, message: string) => checked((s) => re.test(s), message);

const duration = matching(GO_DURATION, "expected a Go duration such as 10s, 1m30s or 500ms");

/** durationBetween is a duration whose value AWS limits to [min, max] seconds. */
const durationBetween = (min: number, max: number) =>
  duration.refine((d) => {
    const s = durationSeconds(d);
    // A malformed duration is reported once, by `duration`.
    return isInterpolated(d) || Number.isNaN(s) || (s >= min && s <= max);
  }, `AWS: must be between ${min}s and ${max}s`);

const int = z.number().int();
const port = int.min(1).max(65535);
const nonEmpty = z.string().min(1);
/** scalar is a YAML scalar that Copilot decodes into a Go string. */
const scalar = z.union([z.string(), z.number(), z.boolean()]);
const cidrv4 = z.cidrv4();
const cidrv6 = z.cidrv6();
const cidr = checked(
  (c) => cidrv4.safeParse(c).success || cidrv6.safeParse(c).success,
  "expected a CIDR block such as 10.0.0.0/16",
);
/** arn is what aws-sdk-go's arn.Parse accepts: six colon-separated sections. */
const arn = matching(/^arn:[^:]*:[^:]*:[^:]*:[^:]*:/, "expected an ARN");
/** oneOfFolded accepts the values Copilot compares case-insensitively (strings.EqualFold). */
const oneOfFolded = (values: readonly string[]) =>
  checked(
    (v) => values.includes(v.toLowerCase()),
    `must be one of ${values.join(", ")} (any case)`,
  );
const envFile = matching(/\.env$/, "environment files must have a .env extension");
/** volumePath is validateVolumePath's character set. */
const volumePath = matching(
  /^[a-zA-Z0-9\-._/]+$/,
  "paths can only contain the characters a-zA-Z0-9.-_/",
);

/** AWS: CloudWatch Logs' RetentionInDays values (Copilot passes the number through). */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
];
const logRetention = int.refine(
  (d) => LOG_RETENTION_DAYS.includes(d),
  `AWS: CloudWatch Logs retention must be one of ${LOG_RETENTION_DAYS.join(", ")} days`,
);

// ---------------------------------------------------------------------------------------------
// Values: variables, secrets (svc.go, workload_ecs.go)

const fromCfn = z.strictObject({ from_cfn: z.string().min(1, "name cannot be an empty string") });
/** StringOrFromCFN. */
const stringOrFromCfn = z.union([z.string(), fromCfn]);
/** Variable: a plain value or an environment addon's export. */
const variable = z.union([scalar, fromCfn]);
const variables = z.record(z.string(), variable);
/** Secret: an SSM parameter name/ARN, an export holding one, or a Secrets Manager secret name. */
const secret = z.union([z.string(), fromCfn, z.strictObject({ secretsmanager: nonEmpty })]);
const secrets = z.record(z.string(), secret);

// ---------------------------------------------------------------------------------------------
// Image and containers (workload.go, workload_ecs.go)

const DEPENDS_ON_STATUSES = ["START", "COMPLETE", "SUCCESS", "HEALTHY"];
const dependsOn = z.record(
  z.string(),
  checked(
    (s) => DEPENDS_ON_STATUSES.includes(s.toUpperCase()),
    `container dependency status must be one of ${DEPENDS_ON_STATUSES.join(", ")}`,
  ),
);

/** DockerBuildArgs, or a string: the Dockerfile's path. */
const build = z.union([
  z.string(),
  z.strictObject({
    context: z.string().optional(),
    dockerfile: z.string().optional(),
    args: z.record(z.string(), scalar).optional(),
    target: z.string().optional(),
    cache_from: z.array(z.string()).optional(),
  }),
]);

/** ImageLocationOrBuild: Copilot refuses `build` and `location` together when decoding. */
const locationOrBuild = {
  build: build.optional(),
  location: z.string().optional(),
};
const imageFields = {
  ...locationOrBuild,
  credentials: z.string().optional(),
  labels: z.record(z.string(), scalar).optional(),
  depends_on: dependsOn.optional(),
};
const notBothBuildAndLocation = (i: { build?: unknown; location?: unknown }) =>
  !(i.build !== undefined && i.location !== undefined);
const BOTH_BUILD_AND_LOCATION = {
  error: '"build" and "location" are mutually exclusive',
  path: ["location"],
};

/** ContainerHealthCheck. AWS: ECS's limits for each field. */
const containerHealthcheck = z.strictObject({
  command: z
    .array(z.string())
    .refine(
      (c) => c.length === 0 || c[0] === "CMD" || c[0] === "CMD-SHELL",
      'AWS: a health check command starts with "CMD" or "CMD-SHELL"',
    )
    .optional(),
  interval: durationBetween(5, 300).optional(),
  retries: int.min(1).max(10).optional(),
  timeout: durationBetween(2, 60).optional(),
  start_period: durationBetween(0, 300).optional(),
});

/** EntryPointOverride / CommandOverride: a shell-style string or a list. */
const stringOrList = z.union([z.string(), z.array(z.string())]);
const imageOverride = {
  entrypoint: stringOrList.optional(),
  command: stringOrList.optional(),
};

/** The three image shapes: with a required port, an optional one, or none (jobs). */
const imageWithPort = z
  .strictObject({ ...imageFields, port, healthcheck: containerHealthcheck.optional() })
  .refine(notBothBuildAndLocation, BOTH_BUILD_AND_LOCATION);
const imageWithOptionalPort = z
  .strictObject({
    ...imageFields,
    port: port.optional(),
    healthcheck: containerHealthcheck.optional(),
  })
  .refine(notBothBuildAndLocation, BOTH_BUILD_AND_LOCATION);
const imageWithoutPort = z
  .strictObject({ ...imageFields, healthcheck: containerHealthcheck.optional() })
  .refine(notBothBuildAndLocation, BOTH_BUILD_AND_LOCATION);

// ---------------------------------------------------------------------------------------------
// Task: platform, count, exec, storage (workload.go, workload_ecs.go, svc.go, storage.go)

const SHORT_PLATFORMS = [
  "linux/amd64",
  "linux/x86_64",
  "linux/arm",
  "linux/arm64",
  "windows/amd64",
  "windows/x86_64",
];
const WINDOWS_FAMILIES = [
  "windows",
  "windows_server_2019_core",
  "windows_server_2019_full",
  "windows_server_2022_core",
  "windows_server_2022_full",
];
const validPlatformPair = (os: string, arch: string) =>
  os === "linux"
    ? ["x86_64", "amd64", "arm", "arm64"].includes(arch)
    : WINDOWS_FAMILIES.includes(os) && ["x86_64", "amd64"].includes(arch);
/**
 * PlatformArgsOrString. Simplified: the object form is checked as written, so an override giving
 * only one of osfamily/architecture is refused (Copilot would merge it with the other).
 */
const platform = z.union([
  checked(
    (p) => SHORT_PLATFORMS.includes(p.toLowerCase()),
    `platform must be one of ${SHORT_PLATFORMS.join(", ")}`,
  ),
  z
    .strictObject({ osfamily: z.string(), architecture: z.string() })
    .refine(
      (p) => validPlatformPair(p.osfamily.toLowerCase(), p.architecture.toLowerCase()),
      "invalid (osfamily, architecture) pair: linux takes x86_64, amd64, arm or arm64; windows families take x86_64 or amd64",
    ),
]);

const INT_RANGE = /^(\d+)-(\d+)$/;
/** intRange is `from-to` with from <= to. */
const intRange = (message: string) =>
  checked((r) => {
    const m = INT_RANGE.exec(r);
    return m !== null && Number(m[1]) <= Number(m[2]);
  }, message);
/** Range: `min-max` or {min, max, spot_from}; min/max are checked after the merge. */
const range = z.union([
  intRange("range must be <min>-<max> with min <= max"),
  z.strictObject({
    min: int.min(0).optional(),
    max: int.min(0).optional(),
    spot_from: int.min(0).optional(),
  }),
]);
const cooldown = z.strictObject({ in: duration.optional(), out: duration.optional() });
/** ScalingConfigOrT: a target value, or {value, cooldown}. */
const scaling = <T extends z.ZodType>(value: T) =>
  z.union([value, z.strictObject({ value: value.optional(), cooldown: cooldown.optional() })]);
const percentage = int.min(0).max(100);
/** AdvancedCount for Load Balanced Web and Backend Services (`queue_delay` is Worker-only). */
const autoscaling = z.strictObject({
  spot: int.min(0).optional(),
  range: range.optional(),
  cooldown: cooldown.optional(),
  cpu_percentage: scaling(percentage).optional(),
  memory_percentage: scaling(percentage).optional(),
  requests: scaling(int.min(1)).optional(),
  response_time: scaling(duration).optional(),
  queue_delay: z.never({ error: '"queue_delay" scaling is for Worker Services only' }).optional(),
});
const serviceCount = z.union([int.min(0), autoscaling]);
/** A job's count: Copilot refuses autoscaling for workload types without scaling fields. */
const jobCount = int.min(0);

const exec = z.union([z.boolean(), z.strictObject({ enable: z.boolean().optional() })]);

const efsAdvanced = z
  .strictObject({
    id: stringOrFromCfn.optional(),
    root_dir: volumePath.optional(),
    auth: z
      .strictObject({
        iam: z.boolean().optional(),
        access_point_id: z.string().optional(),
      })
      .optional(),
    uid: int.min(1, '"uid" must not be 0').max(4294967295).optional(),
    gid: int.min(0).max(4294967295).optional(),
  })
  .refine(
    (e) =>
      !(
        (e.uid !== undefined || e.gid !== undefined) &&
        (e.id !== undefined || e.root_dir !== undefined || e.auth !== undefined)
      ),
    '"uid/gid" and "id/root_dir/auth" are mutually exclusive',
  );
const volume = z.strictObject({
  efs: z.union([z.boolean(), efsAdvanced]).optional(),
  path: volumePath.optional(),
  read_only: z.boolean().optional(),
});
const storage = z.strictObject({
  ephemeral: int
    .min(20, "ephemeral storage must be between 20 GiB and 200 GiB")
    .max(200, "ephemeral storage must be between 20 GiB and 200 GiB")
    .optional(),
  readonly_fs: z.boolean().optional(),
  volumes: z.record(z.string(), volume).optional(),
});

/** TaskConfig, inlined into every workload; `count` differs by kind. */
const taskFields = {
  cpu: int.min(1).optional(),
  memory: int.min(1).optional(),
  platform: platform.optional(),
  exec: exec.optional(),
  variables: variables.optional(),
  env_file: envFile.optional(),
  secrets: secrets.optional(),
  storage: storage.optional(),
};

// ---------------------------------------------------------------------------------------------
// Logging, sidecars, network, publish, overrides, deployment, observability

const logging = z.strictObject({
  retention: logRetention.optional(),
  image: z.string().optional(),
  destination: z.record(z.string(), scalar).optional(),
  enableMetadata: z.boolean().optional(),
  secretOptions: secrets.optional(),
  configFilePath: z.string().optional(),
  variables: variables.optional(),
  secrets: secrets.optional(),
  env_file: envFile.optional(),
});

/** A container port, optionally with its protocol: `8080` or `8080/udp`. */
const portMapping = (protocols: readonly string[]) =>
  z
    .union([port, z.string()])
    .refine(
      (p) =>
        typeof p === "number" ||
        isInterpolated(p) ||
        new RegExp(`^\\d{1,5}(/(${protocols.join("|")}))?$`, "i").test(p),
      `expected a port, optionally with a protocol (${protocols.join(", ")})`,
    );

const sidecar = z.strictObject({
  port: portMapping(["tcp", "udp"]).optional(),
  image: z
    .union([
      z.string(),
      z.strictObject(locationOrBuild).refine(notBothBuildAndLocation, BOTH_BUILD_AND_LOCATION),
    ])
    .optional(),
  essential: z.boolean().optional(),
  credentialsParameter: z.string().optional(),
  variables: variables.optional(),
  env_file: envFile.optional(),
  secrets: secrets.optional(),
  mount_points: z
    .array(
      z.strictObject({
        source_volume: nonEmpty,
        path: volumePath,
        read_only: z.boolean().optional(),
      }),
    )
    .optional(),
  labels: z.record(z.string(), scalar).optional(),
  depends_on: dependsOn.optional(),
  healthcheck: containerHealthcheck.optional(),
  ...imageOverride,
});

/** NetworkConfig: subnet placement, security groups and Service Connect. */
const network = z.strictObject({
  vpc: z
    .strictObject({
      placement: z
        .union([
          checked(
            (p) => p === "public" || p === "private",
            '"placement" must be public or private',
          ),
          z.strictObject({
            subnets: z.union([
              z.array(z.string()),
              z.strictObject({
                from_tags: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
              }),
            ]),
          }),
        ])
        .optional(),
      security_groups: z
        .union([
          z.array(stringOrFromCfn),
          z.strictObject({
            groups: z.array(stringOrFromCfn).optional(),
            deny_default: z.boolean().optional(),
          }),
        ])
        .optional(),
    })
    .optional(),
  connect: z.union([z.boolean(), z.strictObject({ alias: z.string().optional() })]).optional(),
});

const publish = z.strictObject({
  topics: z
    .array(
      z.strictObject({
        name: matching(
          /^[a-zA-Z0-9_-]+$/,
          '"name" can only contain letters, numbers, underscores, and hyphens',
        ),
        fifo: z
          .union([
            z.boolean(),
            z.strictObject({ content_based_deduplication: z.boolean().optional() }),
          ])
          .optional(),
      }),
    )
    .optional(),
});

/** OverrideRule; Copilot refuses to override the task family and container names. */
const taskdefOverrides = z.array(
  z.strictObject({
    path: z
      .string()
      .refine(
        (p) => !/^Family$/.test(p) && !/^ContainerDefinitions\[\d+\].Name$/.test(p),
        "the task family and container names cannot be overridden",
      ),
    value: z.unknown(),
  }),
);

const deployment = z.strictObject({
  rolling: oneOfFolded(["default", "recreate"]).optional(),
  rollback_alarms: z
    .union([
      z.array(z.string()).min(1),
      z.strictObject({
        cpu_utilization: z.number().optional(),
        memory_utilization: z.number().optional(),
      }),
    ])
    .optional(),
});

const observability = z.strictObject({ tracing: oneOfFolded(["awsxray"]).optional() });

// ---------------------------------------------------------------------------------------------
// Load balancers (http.go, lb_web_svc.go, workload_ecs.go)

/** Alias: a name, a list of names, or a list of {name, hosted_zone}. */
const alias = z.union([
  z.string(),
  z.array(z.string()),
  z.array(z.strictObject({ name: nonEmpty, hosted_zone: z.string().optional() })),
]);

/** HTTPHealthCheckArgs, or a string: the path. AWS: target group limits. */
const albHealthcheck = z.union([
  z.string(),
  z.strictObject({
    path: z.string().optional(),
    port: port.optional(),
    success_codes: z
      .union([int, matching(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, "e.g. 200, 200,204 or 200-299")])
      .optional(),
    healthy_threshold: int.min(2).max(10).optional(),
    unhealthy_threshold: int.min(2).max(10).optional(),
    timeout: durationBetween(2, 120).optional(),
    interval: durationBetween(5, 300).optional(),
    grace_period: durationBetween(0, 2147483647).optional(),
  }),
]);

/** RoutingRule: one listener rule of the Application Load Balancer. */
const routingRuleFields = {
  path: z.string().optional(),
  version: oneOfFolded(["grpc", "http1", "http2"]).optional(),
  healthcheck: albHealthcheck.optional(),
  stickiness: z.boolean().optional(),
  alias: alias.optional(),
  deregistration_delay: durationBetween(0, 3600).optional(),
  target_container: z.string().optional(),
  target_port: port.optional(),
  allowed_source_ips: z.array(cidr).optional(),
  hosted_zone: z.string().optional(),
  redirect_to_https: z.boolean().optional(),
};
const routingRule = z.strictObject(routingRuleFields);
/** HTTP: the main rule inline, plus the imported ALB and the additional rules. */
const http = z.strictObject({
  ...routingRuleFields,
  alb: z.string().optional(),
  /** Deprecated spelling of target_container, still accepted. */
  targetContainer: z.string().optional(),
  additional_rules: z.array(routingRule).optional(),
});
/** HTTPOrBool: `http: false` removes the ALB from a Load Balanced Web Service. */
const httpOrBool = z.union([http, z.boolean()]);

/** NetworkLoadBalancerListener. */
const nlbListenerFields = {
  port: portMapping(["tcp", "udp", "tls"]).optional(),
  healthcheck: z
    .strictObject({
      port: port.optional(),
      healthy_threshold: int.min(2).max(10).optional(),
      unhealthy_threshold: int.min(2).max(10).optional(),
      timeout: durationBetween(2, 120).optional(),
      interval: durationBetween(5, 300).optional(),
      grace_period: durationBetween(0, 2147483647).optional(),
    })
    .optional(),
  target_container: z.string().optional(),
  target_port: port.optional(),
  ssl_policy: z.string().optional(),
  stickiness: z.boolean().optional(),
  deregistration_delay: durationBetween(0, 3600).optional(),
};
const nlb = z.strictObject({
  ...nlbListenerFields,
  alias: alias.optional(),
  additional_listeners: z.array(z.strictObject(nlbListenerFields)).optional(),
});

// ---------------------------------------------------------------------------------------------
// Workload kinds

const workloadHeader = { name: nonEmpty };

/** LoadBalancedWebServiceConfig: the fields `environments.<env>` may override. */
const lbwsConfig = {
  ...imageOverride,
  ...taskFields,
  count: serviceCount.optional(),
  logging: logging.optional(),
  sidecars: z.record(z.string(), sidecar).optional(),
  network: network.optional(),
  publish: publish.optional(),
  taskdef_overrides: taskdefOverrides.optional(),
  nlb: nlb.optional(),
  deployment: deployment.optional(),
  observability: observability.optional(),
};
const lbwsOverride = z.strictObject({
  ...lbwsConfig,
  image: imageWithOptionalPort.optional(),
  http: httpOrBool.optional(),
});
const lbwsBase = z.strictObject({
  ...workloadHeader,
  type: z.literal("Load Balanced Web Service"),
  ...lbwsConfig,
  image: imageWithPort,
  http: httpOrBool,
});

/** BackendServiceConfig; its `http` (an internal ALB) cannot be `false`. */
const backendConfig = {
  ...imageOverride,
  ...taskFields,
  count: serviceCount.optional(),
  http: http.optional(),
  logging: logging.optional(),
  sidecars: z.record(z.string(), sidecar).optional(),
  network: network.optional(),
  publish: publish.optional(),
  taskdef_overrides: taskdefOverrides.optional(),
  deployment: deployment.optional(),
  observability: observability.optional(),
};
const backendOverride = z.strictObject({
  ...backendConfig,
  image: imageWithOptionalPort.optional(),
});
const backendBase = z.strictObject({
  ...workloadHeader,
  type: z.literal("Backend Service"),
  ...backendConfig,
  image: imageWithOptionalPort,
});

const PRESET_SCHEDULES = /^@(hourly|daily|midnight|weekly|monthly|yearly|annually)$/;
const CRON_FIELD = /^[0-9A-Za-z*?/,-]+$/;
/**
 * A job schedule as ScheduledJob.awsSchedule accepts it: `none`, `rate(...)`/`cron(...)`
 * (passed to AWS unchecked), a preset, `@every <duration>` in whole minutes, or a 5-field cron.
 * Simplified: cron fields are checked for their characters only, not their ranges.
 */
const schedule = checked((s) => {
  if (s === "none" || /^(rate|cron)\(.*\)$/.test(s) || PRESET_SCHEDULES.test(s)) return true;
  if (s.startsWith("@every ")) {
    const seconds = durationSeconds(s.slice("@every ".length));
    return seconds >= 60 && seconds % 60 === 0;
  }
  const fields = s
    .replace(/^(CRON_)?TZ=\S+\s+/, "")
    .trim()
    .split(/\s+/);
  return fields.length === 5 && fields.every((f) => CRON_FIELD.test(f));
}, "schedule must be a 5-field cron, rate(...), cron(...), a preset like @daily, @every <whole minutes>, or none");

/** ScheduledJobConfig. */
const jobConfig = {
  ...imageOverride,
  ...taskFields,
  count: jobCount.optional(),
  logging: logging.optional(),
  sidecars: z.record(z.string(), sidecar).optional(),
  on: z.strictObject({ schedule }).optional(),
  /** Copilot: a duration of whole seconds, at least 1s. */
  timeout: duration
    .refine((d) => {
      const s = durationSeconds(d);
      return isInterpolated(d) || Number.isNaN(s) || (s >= 1 && Number.isInteger(s));
    }, "timeout must be a whole number of seconds, at least 1s")
    .optional(),
  retries: int.min(0, "number of retries cannot be negative").optional(),
  network: network.optional(),
  publish: publish.optional(),
  taskdef_overrides: taskdefOverrides.optional(),
};
const jobOverride = z.strictObject({ ...jobConfig, image: imageWithoutPort.optional() });
const jobBase = z.strictObject({
  ...workloadHeader,
  type: z.literal("Scheduled Job"),
  ...jobConfig,
  image: imageWithoutPort,
  on: z.strictObject({ schedule }),
});

type LbwsManifest = z.infer<typeof lbwsBase>;
type BackendManifest = z.infer<typeof backendBase>;
type JobManifest = z.infer<typeof jobBase>;
type Report = (message: string, path: PropertyKey[]) => void;

// ---------------------------------------------------------------------------------------------
// Environment overrides (transform.go)

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const AUTOSCALING_KEYS = [
  "range",
  "cooldown",
  "cpu_percentage",
  "memory_percentage",
  "requests",
  "response_time",
  "queue_delay",
];
const EFS_UID_KEYS = ["uid", "gid"];
const EFS_BYO_KEYS = ["id", "root_dir", "auth"];

/**
 * mergeOverride applies an `environments.<env>` override the way Copilot's applyEnv does
 * (mergo.WithOverride plus its transformers): maps merge key by key, lists and scalars replace,
 * a value of the other form of a union replaces the whole value, and setting one side of an
 * either/or pair clears the other (image build/location, count spot/autoscaling, EFS uid/gid vs
 * id/root_dir/auth, secret from_cfn/secretsmanager).
 */
export function mergeOverride(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (!isObject(base) || !isObject(override)) return override;
  if ("from_cfn" in override || "secretsmanager" in override) return override;
  const cleared = new Set<string>();
  const clears = (set: string[], keys: string[]) => {
    if (set.some((k) => k in override)) for (const k of keys) cleared.add(k);
  };
  clears(["build"], ["location"]);
  clears(["location"], ["build"]);
  clears(["spot"], AUTOSCALING_KEYS);
  clears(AUTOSCALING_KEYS, ["spot"]);
  clears(EFS_UID_KEYS, EFS_BYO_KEYS);
  clears(EFS_BYO_KEYS, EFS_UID_KEYS);
  const out: Json = Object.fromEntries(Object.entries(base).filter(([k]) => !cleared.has(k)));
  for (const [k, v] of Object.entries(override)) out[k] = mergeOverride(out[k], v);
  return out;
}

/**
 * checkEachEnvironment runs the post-merge checks on the manifest as it deploys to each listed
 * environment and to unlisted ones, reporting a problem once even if several environments have it.
 */
function checkEachEnvironment<M>(check: (m: M, report: Report) => void) {
  return (
    m: M & { environments?: Record<string, unknown> | undefined },
    ctx: z.core.$RefinementCtx,
  ) => {
    const { environments, ...base } = m;
    const seen = new Set<string>();
    const run = (env: string | undefined, effective: M) =>
      check(effective, (message, path) => {
        const key = `${path.join(".")}: ${message}`;
        if (seen.has(key)) return;
        seen.add(key);
        ctx.addIssue({
          code: "custom",
          message: env === undefined ? message : `${message} (in environment ${env})`,
          path,
        });
      });
    run(undefined, base as M);
    for (const [env, override] of Object.entries(environments ?? {}))
      run(env, mergeOverride(base, override) as M);
  };
}

// ---------------------------------------------------------------------------------------------
// Post-merge checks (validate.go)

/** AWS: Fargate's CPU units and the memory (MiB) each allows. */
const FARGATE_MEMORY: Record<number, (mib: number) => boolean> = {
  256: (m) => [512, 1024, 2048].includes(m),
  512: (m) => m >= 1024 && m <= 4096 && m % 1024 === 0,
  1024: (m) => m >= 2048 && m <= 8192 && m % 1024 === 0,
  2048: (m) => m >= 4096 && m <= 16384 && m % 1024 === 0,
  4096: (m) => m >= 8192 && m <= 30720 && m % 1024 === 0,
  8192: (m) => m >= 16384 && m <= 61440 && m % 4096 === 0,
  16384: (m) => m >= 32768 && m <= 122880 && m % 8192 === 0,
};

type Platform = z.infer<typeof platform>;
const platformParts = (p: Platform | undefined): { os: string; arch: string } => {
  if (p === undefined) return { os: "linux", arch: "x86_64" };
  if (typeof p === "string") {
    const [os = "", arch = ""] = p.toLowerCase().split("/");
    return { os, arch };
  }
  return { os: p.osfamily.toLowerCase(), arch: p.architecture.toLowerCase() };
};

type TaskLike = {
  name: string;
  cpu?: number | undefined;
  memory?: number | undefined;
  platform?: Platform | undefined;
  storage?: z.infer<typeof storage> | undefined;
  logging?: z.infer<typeof logging> | undefined;
  sidecars?: Record<string, z.infer<typeof sidecar>> | undefined;
  network?: z.infer<typeof network> | undefined;
  image: { build?: unknown; location?: unknown; depends_on?: Record<string, string> | undefined };
};

/** checkTask: the checks every workload kind shares. */
function checkTask(m: TaskLike, spot: { spot?: unknown; spotFrom?: unknown }, report: Report) {
  const emptyBuild = m.image.build === undefined || m.image.build === "";
  if (emptyBuild === (m.image.location === undefined))
    report('exactly one of "build" and "location" must be specified', ["image"]);

  // Copilot's defaults (newDefault* manifests) apply when cpu/memory are not set.
  const cpu = m.cpu ?? 256;
  const memory = m.memory ?? 512;
  const allowed = FARGATE_MEMORY[cpu];
  if (allowed === undefined)
    report(
      `AWS: Fargate cpu must be one of ${Object.keys(FARGATE_MEMORY).join(", ")}`,
      m.cpu === undefined ? [] : ["cpu"],
    );
  else if (!allowed(memory))
    report(`AWS: Fargate does not offer ${memory} MiB of memory with ${cpu} cpu units`, [
      m.memory === undefined ? "cpu" : "memory",
    ]);

  const { os, arch } = platformParts(m.platform);
  if (WINDOWS_FAMILIES.includes(os)) {
    if (cpu < 1024 || memory < 2048)
      report("AWS: Fargate Windows tasks need at least 1024 cpu and 2048 MiB of memory", ["cpu"]);
    if (m.storage?.readonly_fs === true)
      report('"readonly_fs" can not be set to true when deploying a Windows container', [
        "storage",
        "readonly_fs",
      ]);
    if (Object.values(m.storage?.volumes ?? {}).some((v) => v.efs !== undefined && v.efs !== false))
      report("EFS is not supported when deploying a Windows container", ["storage", "volumes"]);
    const connect = m.network?.connect;
    if (connect === true || (typeof connect === "object" && connect.alias !== undefined))
      report("service connect is not supported for Windows", ["network", "connect"]);
  }
  if (
    (arch === "arm" || arch === "arm64") &&
    (spot.spot !== undefined || spot.spotFrom !== undefined)
  )
    report("Fargate Spot is not supported when deploying on ARM architecture", ["count"]);

  checkStorage(m.storage, report);
  checkContainers(m, report);
}

function checkStorage(s: z.infer<typeof storage> | undefined, report: Report) {
  let managed = 0;
  for (const [name, v] of Object.entries(s?.volumes ?? {})) {
    const path = ["storage", "volumes", name];
    if (v.path === undefined) report('"path" must be specified', path);
    const efs = v.efs;
    if (efs === true) managed++;
    if (typeof efs !== "object") continue;
    if ((efs.uid === undefined) !== (efs.gid === undefined))
      report('"uid" and "gid" must be specified together', [...path, "efs"]);
    if (efs.uid !== undefined) managed++;
    if (efs.auth?.access_point_id !== undefined) {
      const rootOk = efs.root_dir === undefined || efs.root_dir === "" || efs.root_dir === "/";
      if (!rootOk || efs.auth.iam === false)
        report(
          '"root_dir" must be either empty or "/" and "auth.iam" must be true when "access_point_id" is used',
          [...path, "efs"],
        );
    }
  }
  if (managed > 1)
    report("cannot specify more than one managed volume per service", ["storage", "volumes"]);
}

/** checkContainers: sidecar images, and depends_on naming containers with allowed statuses. */
function checkContainers(m: TaskLike, report: Report) {
  const essential = new Map<string, boolean>([[m.name, true]]);
  if (m.logging !== undefined && Object.keys(m.logging).some((k) => k !== "retention"))
    essential.set("firelens_log_router", false);
  for (const [name, s] of Object.entries(m.sidecars ?? {})) {
    essential.set(name, s.essential ?? true);
    if (s.image === undefined) report('"image" must be specified', ["sidecars", name]);
  }
  const deps: [PropertyKey[], Record<string, string> | undefined][] = [
    [["image", "depends_on"], m.image.depends_on],
    ...Object.entries(m.sidecars ?? {}).map(
      ([name, s]): [PropertyKey[], Record<string, string> | undefined] => [
        ["sidecars", name, "depends_on"],
        s.depends_on,
      ],
    ),
  ];
  for (const [path, dependsOn] of deps) {
    for (const [container, status] of Object.entries(dependsOn ?? {})) {
      const isEssential = essential.get(container);
      if (isEssential === undefined) report(`container ${container} does not exist`, path);
      else if (isEssential && !["START", "HEALTHY"].includes(status.toUpperCase()))
        report(`essential container ${container} can only have status START or HEALTHY`, path);
    }
  }
}

type Autoscaling = z.infer<typeof autoscaling>;
type ServiceCount = z.infer<typeof serviceCount>;

/** checkCount: AdvancedCount.validate for Load Balanced Web and Backend Services. */
function checkCount(count: ServiceCount | undefined, report: Report): Autoscaling | undefined {
  if (count === undefined || typeof count === "number") return undefined;
  const scaling = ["cpu_percentage", "memory_percentage", "requests", "response_time"] as const;
  const hasScaling = scaling.some((k) => count[k] !== undefined);
  if (count.spot !== undefined && (count.range !== undefined || hasScaling))
    report(`"spot" and "range/${scaling.join("/")}" are mutually exclusive`, ["count"]);
  if (typeof count.range === "object") {
    const { min, max } = count.range;
    if (min === undefined || max === undefined)
      report('"min/max" must be specified', ["count", "range"]);
    else if (min > max)
      report(`min value ${min} cannot be greater than max value ${max}`, ["count", "range"]);
  }
  if (count.range === undefined && hasScaling)
    report(`"range" must be specified if "${scaling.join(", ")}" are specified`, ["count"]);
  if (count.range !== undefined && !hasScaling)
    report(`must specify at least one of "${scaling.join(", ")}" if "range" is specified`, [
      "count",
    ]);
  if (count.cooldown !== undefined && !hasScaling)
    report(`must specify at least one of "${scaling.join(", ")}" if "cooldown" is specified`, [
      "count",
    ]);
  return count;
}

type Http = z.infer<typeof http>;
type RoutingRule = z.infer<typeof routingRule>;

const aliasNames = (a: z.infer<typeof alias> | undefined): string[] =>
  a === undefined
    ? []
    : typeof a === "string"
      ? [a]
      : [...a].map((x) => (typeof x === "string" ? x : x.name));

/** checkHttp: HTTP.validate and validateTargetContainer for the main and additional rules. */
function checkHttp(
  h: Http,
  m: { name: string; image: { port?: number | undefined }; sidecars?: TaskLike["sidecars"] },
  report: Report,
) {
  if (h.target_container !== undefined && h.targetContainer !== undefined)
    report('"target_container" and "targetContainer" are mutually exclusive', ["http"]);
  const rules: [PropertyKey[], RoutingRule][] = [
    [["http"], { ...h, target_container: h.target_container ?? h.targetContainer }],
    ...(h.additional_rules ?? []).map((r, i): [PropertyKey[], RoutingRule] => [
      ["http", "additional_rules", i],
      r,
    ]),
  ];
  for (const [path, rule] of rules) {
    if (rule.path === undefined) report('"path" must be specified', path);
    if (rule.hosted_zone !== undefined && rule.alias === undefined)
      report('"alias" must be specified if "hosted_zone" is specified', path);
    if (aliasNames(rule.alias).length + (rule.allowed_source_ips?.length ?? 0) >= 5)
      report(
        "a listener rule can have at most five conditions: aliases plus allowed_source_ips must be fewer than 5",
        path,
      );
    const target = rule.target_container;
    if (target === undefined) continue;
    if (target === m.name) {
      if (m.image.port === undefined)
        report(`target container "${target}" doesn't expose a port`, path);
    } else {
      const s = m.sidecars?.[target];
      if (s === undefined) report(`target container "${target}" doesn't exist`, path);
      else if (s.port === undefined)
        report(`target container "${target}" doesn't expose a port`, path);
    }
  }
}

type Nlb = z.infer<typeof nlb>;
const nlbIsEmpty = (n: Nlb | undefined) => n === undefined || Object.keys(n).length === 0;

function checkLbws(m: LbwsManifest, report: Report) {
  const count = checkCount(m.count, report);
  const h = m.http;
  if (h === false && nlbIsEmpty(m.nlb))
    report('must specify at least one of "http" or "nlb"', ["http"]);
  if (h === false && (count?.requests !== undefined || count?.response_time !== undefined))
    report('scaling based on "nlb" requests or response time is not supported', ["count"]);
  const albGrace =
    typeof h === "object" &&
    typeof h.healthcheck === "object" &&
    h.healthcheck.grace_period !== undefined;
  const nlbGrace = m.nlb?.healthcheck?.grace_period !== undefined;
  if (albGrace && nlbGrace)
    report(
      '"http.healthcheck.grace_period" and "nlb.healthcheck.grace_period" are mutually exclusive',
      [],
    );
  if (typeof h === "object") {
    checkHttp(h, m, report);
    (h.additional_rules ?? []).forEach((r, i) => {
      if (typeof r.healthcheck === "object" && r.healthcheck.grace_period !== undefined)
        report('"grace_period" can only be specified for the main rule, not "additional_rules"', [
          "http",
          "additional_rules",
          i,
          "healthcheck",
        ]);
    });
  }
  if (!nlbIsEmpty(m.nlb) && m.nlb !== undefined) {
    if (m.nlb.port === undefined) report('"port" must be specified', ["nlb"]);
    const a = m.nlb.alias;
    if (
      Array.isArray(a) &&
      [...a].some((x) => typeof x === "object" && x.hosted_zone !== undefined)
    )
      report('"hosted_zone" is not supported for Network Load Balancer', ["nlb", "alias"]);
    (m.nlb.additional_listeners ?? []).forEach((l, i) => {
      if (l.port === undefined)
        report('"port" must be specified', ["nlb", "additional_listeners", i]);
      if (l.healthcheck?.grace_period !== undefined)
        report('"grace_period" can only be specified for the main listener', [
          "nlb",
          "additional_listeners",
          i,
          "healthcheck",
        ]);
    });
  }
  const spotFrom = typeof count?.range === "object" ? count.range.spot_from : undefined;
  checkTask(m, { spot: count?.spot, spotFrom }, report);
}

function checkBackend(m: BackendManifest, report: Report) {
  const count = checkCount(m.count, report);
  const h = m.http;
  const httpEmpty = h === undefined || Object.keys(h).length === 0;
  if (httpEmpty && (count?.requests !== undefined || count?.response_time !== undefined))
    report('"http" must be specified if "count.requests" or "count.response_time" are specified', [
      "count",
    ]);
  if (!httpEmpty && h !== undefined) checkHttp(h, m, report);
  const connect = m.network?.connect;
  if (
    typeof connect === "object" &&
    connect.alias !== undefined &&
    m.image.port === undefined &&
    h?.target_container === undefined
  )
    report('cannot set "network.connect.alias" when no ports are exposed', ["network", "connect"]);
  const spotFrom = typeof count?.range === "object" ? count.range.spot_from : undefined;
  checkTask(m, { spot: count?.spot, spotFrom }, report);
}

function checkJob(m: JobManifest, report: Report) {
  checkTask(m, {}, report);
}

// ---------------------------------------------------------------------------------------------
// Environment (env.go, deprecated.go, validate_env.go)

const subnet = z
  .strictObject({
    id: z.string().optional(),
    cidr: cidr.optional(),
    az: z.string().optional(),
  })
  .refine(
    (s) => !(s.id !== undefined && s.cidr !== undefined),
    '"id" and "cidr" are mutually exclusive',
  )
  .refine(
    (s) => !(s.id !== undefined && s.az !== undefined),
    '"id" and "az" are mutually exclusive',
  );

/** securityGroupRule: `ports` is a port or `from-to`. */
const securityGroupRule = z.strictObject({
  cidr: nonEmpty,
  ports: z.union([
    int.min(0).max(65535),
    intRange("ports must be a port or <from_port>-<to_port>"),
  ]),
  ip_protocol: nonEmpty,
});

const restrictiveIngress = z.strictObject({
  cdn: z.boolean().optional(),
  source_ips: z.array(cidr).optional(),
});
/** DeprecatedALBSecurityGroupsConfig: `security_groups.ingress.{restrict_to,from_vpc}`. */
const deprecatedSecurityGroups = z.strictObject({
  ingress: z
    .strictObject({
      restrict_to: restrictiveIngress.optional(),
      from_vpc: z.boolean().optional(),
    })
    .optional(),
});

const environmentBase = z.strictObject({
  name: nonEmpty,
  type: z.literal("Environment"),
  network: z
    .strictObject({
      vpc: z
        .strictObject({
          id: z.string().optional(),
          cidr: cidr.optional(),
          subnets: z
            .strictObject({
              public: z.array(subnet).optional(),
              private: z.array(subnet).optional(),
            })
            .optional(),
          security_group: z
            .strictObject({
              ingress: z.array(securityGroupRule).optional(),
              egress: z.array(securityGroupRule).optional(),
            })
            .optional(),
          flow_logs: z
            .union([z.boolean(), z.strictObject({ retention: logRetention.optional() })])
            .optional(),
        })
        .optional(),
    })
    .optional(),
  observability: z.strictObject({ container_insights: z.boolean().optional() }).optional(),
  http: z
    .strictObject({
      public: z
        .strictObject({
          security_groups: deprecatedSecurityGroups.optional(),
          certificates: z.array(arn).optional(),
          access_logs: z
            .union([
              z.boolean(),
              z.strictObject({
                bucket_name: z.string().optional(),
                prefix: z.string().optional(),
              }),
            ])
            .optional(),
          ingress: restrictiveIngress.optional(),
          ssl_policy: z.string().optional(),
        })
        .optional(),
      private: z
        .strictObject({
          subnets: z.array(z.string()).optional(),
          certificates: z.array(arn).optional(),
          security_groups: deprecatedSecurityGroups.optional(),
          ingress: z.strictObject({ vpc: z.boolean().optional() }).optional(),
          ssl_policy: z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  cdn: z
    .union([
      z.boolean(),
      z.strictObject({
        certificate: arn
          .refine(
            (a) => isInterpolated(a) || a.split(":")[3] === "us-east-1",
            "CloudFront certificates must be in us-east-1",
          )
          .optional(),
        terminate_tls: z.boolean().optional(),
        static_assets: z
          .strictObject({
            location: nonEmpty,
            alias: nonEmpty,
            path: nonEmpty,
          })
          .optional(),
      }),
    ])
    .optional(),
});
type EnvironmentManifest = z.infer<typeof environmentBase>;

const isEmptyObject = (o: object | undefined) => o === undefined || Object.keys(o).length === 0;

/** checkEnvironment: EnvironmentConfig.validate's cross-field rules. */
function checkEnvironment(e: EnvironmentManifest, ctx: z.core.$RefinementCtx) {
  const report: Report = (message, path) => ctx.addIssue({ code: "custom", message, path });
  const vpc = e.network?.vpc;
  const pub = vpc?.subnets?.public ?? [];
  const priv = vpc?.subnets?.private ?? [];
  const imported = vpc?.id !== undefined && vpc.id !== "";
  const customized = vpc?.cidr !== undefined;
  const vpcPath = ["network", "vpc"];
  if (imported && customized)
    report(
      'cannot import VPC resources (with "id" fields) and customize VPC resources (with "cidr" and "az" fields) at the same time',
      vpcPath,
    );
  if (imported) {
    for (const [kind, list] of [
      ["public", pub],
      ["private", priv],
    ] as const)
      list.forEach((s, i) => {
        if (!s.id) report('"id" must be specified', [...vpcPath, "subnets", kind, i]);
      });
    if (pub.length + priv.length === 0)
      report("VPC must have subnets in order to proceed with environment creation", vpcPath);
    if (pub.length === 1)
      report("at least two public subnets must be imported to enable Load Balancing", [
        ...vpcPath,
        "subnets",
        "public",
      ]);
    if (priv.length === 1)
      report("at least two private subnets must be imported", [...vpcPath, "subnets", "private"]);
  }
  if (customized) {
    for (const [kind, list] of [
      ["public", pub],
      ["private", priv],
    ] as const)
      list.forEach((s, i) => {
        if (!s.cidr) report('"cidr" must be specified', [...vpcPath, "subnets", kind, i]);
      });
    const azs = (list: typeof pub) => new Set(list.flatMap((s) => (s.az ? [s.az] : [])));
    const pubAZs = azs(pub);
    const privAZs = azs(priv);
    const cidrs = (list: typeof pub) => new Set(list.flatMap((s) => (s.cidr ? [s.cidr] : [])));
    if (pubAZs.size !== privAZs.size || [...pubAZs].some((az) => !privAZs.has(az)))
      report("public subnets and private subnets do not span the same availability zones", [
        ...vpcPath,
        "subnets",
      ]);
    else if (pubAZs.size > 0) {
      if (pubAZs.size < 2) report("require at least 2 availability zones", [...vpcPath, "subnets"]);
      if (cidrs(pub).size !== pubAZs.size)
        report(
          `number of public subnet CIDRs (${cidrs(pub).size}) does not match number of AZs (${pubAZs.size})`,
          [...vpcPath, "subnets", "public"],
        );
      if (cidrs(priv).size !== pubAZs.size)
        report(
          `number of private subnet CIDRs (${cidrs(priv).size}) does not match number of AZs (${pubAZs.size})`,
          [...vpcPath, "subnets", "private"],
        );
    }
  }

  const pubHttp = e.http?.public;
  const privHttp = e.http?.private;
  if (!isEmptyObject(pubHttp?.security_groups?.ingress) && !isEmptyObject(pubHttp?.ingress))
    report(
      '"http.public.security_groups.ingress" and "http.public.ingress" are mutually exclusive',
      ["http", "public"],
    );
  if (pubHttp?.security_groups?.ingress?.from_vpc !== undefined)
    report("a public load balancer already allows vpc ingress", [
      "http",
      "public",
      "security_groups",
    ]);
  if (!isEmptyObject(privHttp?.security_groups?.ingress) && !isEmptyObject(privHttp?.ingress))
    report(
      '"http.private.security_groups.ingress" and "http.private.ingress" are mutually exclusive',
      ["http", "private"],
    );
  if (!isEmptyObject(privHttp?.security_groups?.ingress?.restrict_to))
    report("an internal load balancer cannot have restrictive ingress fields", [
      "http",
      "private",
      "security_groups",
    ]);

  const cdn = e.cdn;
  const cdnEnabled = cdn === true || (typeof cdn === "object" && !isEmptyObject(cdn));
  const cdnIngress = isEmptyObject(pubHttp?.ingress)
    ? pubHttp?.security_groups?.ingress?.restrict_to?.cdn
    : pubHttp?.ingress?.cdn;
  if (cdnIngress === true && !cdnEnabled)
    report("CDN must be enabled to limit security group ingress to CloudFront", ["cdn"]);
  if (cdnEnabled && typeof cdn === "object") {
    if (pubHttp?.certificates === undefined) {
      if (cdn.certificate !== undefined && cdn.terminate_tls !== true)
        report(
          '"cdn.terminate_tls" must be true if "cdn.certificate" is set without "http.public.certificates"',
          ["cdn"],
        );
    } else if (cdn.certificate === undefined)
      report(
        '"cdn.certificate" must be specified if "http.public.certificates" and "cdn" are specified',
        ["cdn"],
      );
  } else if (cdn === true && pubHttp?.certificates !== undefined)
    report(
      '"cdn.certificate" must be specified if "http.public.certificates" and "cdn" are specified',
      ["cdn"],
    );

  if (privHttp?.subnets !== undefined) {
    if (!imported)
      report("in order to specify internal ALB subnet placement, subnets must be imported", [
        "http",
        "private",
        "subnets",
      ]);
    else {
      const ids = new Set([...pub, ...priv].flatMap((s) => (s.id ? [s.id] : [])));
      if (privHttp.subnets.some((s) => !ids.has(s)))
        report("subnet(s) specified for internal ALB placement not imported", [
          "http",
          "private",
          "subnets",
        ]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Exports

/** dropNulls removes null-valued keys, which yaml.v3 treats as unset. */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (!isObject(v)) return v;
  return Object.fromEntries(
    Object.entries(v).flatMap(([k, x]) => (x === null ? [] : [[k, dropNulls(x)]])),
  );
}

const lbwsManifest = lbwsBase.extend({
  environments: z.record(z.string(), lbwsOverride).optional(),
});
const backendManifest = backendBase.extend({
  environments: z.record(z.string(), backendOverride).optional(),
});
const jobManifest = jobBase.extend({
  environments: z.record(z.string(), jobOverride).optional(),
});

/** loadBalancedWebService is a "Load Balanced Web Service" manifest. */
export const loadBalancedWebService = z.preprocess(
  dropNulls,
  lbwsManifest.superRefine(checkEachEnvironment(checkLbws)),
);

/** backendService is a "Backend Service" manifest. */
export const backendService = z.preprocess(
  dropNulls,
  backendManifest.superRefine(checkEachEnvironment(checkBackend)),
);

/** scheduledJob is a "Scheduled Job" manifest. */
export const scheduledJob = z.preprocess(
  dropNulls,
  jobManifest.superRefine(checkEachEnvironment(checkJob)),
);

/** environment is an "Environment" manifest. */
export const environment = z.preprocess(dropNulls, environmentBase.superRefine(checkEnvironment));

/**
 * valuesOnly are the same schemas without the checks Copilot makes on the merged manifest
 * (required fields and cross-field rules): for tests that read a manifest's values, so that one
 * such problem, reported by the full schema, does not also fail every test reading that manifest.
 */
export const valuesOnly = {
  loadBalancedWebService: z.preprocess(dropNulls, lbwsManifest),
  backendService: z.preprocess(dropNulls, backendManifest),
  scheduledJob: z.preprocess(dropNulls, jobManifest),
  environment: z.preprocess(dropNulls, environmentBase),
};

export type LoadBalancedWebService = z.infer<typeof loadBalancedWebService>;
export type BackendService = z.infer<typeof backendService>;
export type ScheduledJob = z.infer<typeof scheduledJob>;
export type Environment = z.infer<typeof environment>;

/** MANIFEST_SCHEMAS maps a manifest's `type` to its schema. */
export const MANIFEST_SCHEMAS = {
  "Load Balanced Web Service": loadBalancedWebService,
  "Backend Service": backendService,
  "Scheduled Job": scheduledJob,
  Environment: environment,
} as const;

const showPath = (path: readonly PropertyKey[]) =>
  path.reduce<string>(
    (s, p) => (typeof p === "number" ? `${s}[${p}]` : s === "" ? String(p) : `${s}.${String(p)}`),
    "",
  ) || "(manifest)";

/** depth is how far into the input a branch's issues reach: how well the input fits its form. */
const depth = (issues: readonly z.core.$ZodIssue[]): number =>
  Math.max(...issues.map((i) => i.path.length + (i.code === "unrecognized_keys" ? 1 : 0)));

/**
 * describeIssues turns zod issues into one line per problem, `path: reason`. For a value that
 * fits no form of a union, it reports the form the value got furthest into (an object with a
 * misspelled key is reported as that key, not as "expected string").
 */
export function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): string[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    const branches: readonly (readonly z.core.$ZodIssue[])[] =
      issue.code === "invalid_union" ? issue.errors : [];
    if (branches.length > 0) {
      const best = branches.reduce((a, b) =>
        depth(b) > depth(a) || (depth(b) === depth(a) && b.length < a.length) ? b : a,
      );
      if (depth(best) > 0) return describeIssues(best, path);
      const expected = branches.flatMap((b) =>
        b.flatMap((i) =>
          i.code === "invalid_type"
            ? [i.expected]
            : i.code === "invalid_value"
              ? i.values.map((v) => JSON.stringify(v))
              : [],
        ),
      );
      const refined = branches
        .flat()
        .filter((i) => i.code !== "invalid_type" && i.code !== "invalid_value");
      if (refined.length > 0) return describeIssues(refined, path);
      return [`${showPath(path)}: expected ${[...new Set(expected)].join(" or ")}`];
    }
    if (issue.code === "unrecognized_keys")
      return issue.keys.map((k) => `${showPath([...path, k])}: unknown field`);
    return [`${showPath(path)}: ${issue.message}`];
  });
}

/**
 * manifestProblems validates a parsed manifest against the schema for its `type` and returns its
 * problems, one line each (empty if it is valid).
 */
export function manifestProblems(raw: unknown): string[] {
  const type = isObject(raw) ? raw.type : undefined;
  if (typeof type !== "string" || !Object.hasOwn(MANIFEST_SCHEMAS, type))
    return [
      `type: ${JSON.stringify(type)} is not one of ${Object.keys(MANIFEST_SCHEMAS).join(", ")} (the kinds this schema covers)`,
    ];
  const result = MANIFEST_SCHEMAS[type as keyof typeof MANIFEST_SCHEMAS].safeParse(raw);
  return result.success ? [] : describeIssues(result.error.issues);
}
