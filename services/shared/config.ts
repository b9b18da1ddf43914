import { z } from "zod";
import { ID_PATTERN, REGION_PATTERN, randomId } from "./ids.ts";

/**
 * Configuration comes from environment variables only, read and validated once at start.
 * A bad value stops the process with a message naming the variable. README.md lists them all.
 */

const region = z
  .string()
  .regex(REGION_PATTERN, "must be lowercase letters, digits and '-', e.g. us-east-1");
const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);
const ms = (fallback: number) => z.coerce.number().int().min(1).max(86_400_000).default(fallback);
const url = (fallback: string) => z.url({ protocol: /^https?$/ }).default(fallback);
const regionList = z
  .string()
  .default("")
  .transform((s) =>
    s
      .split(",")
      .map((r) => r.trim())
      .filter((r) => r !== ""),
  )
  .pipe(z.array(region));

const common = {
  CHAT_REGION: region.default("local"),
  CHAT_PEER_REGIONS: regionList,
  HOST: z.string().min(1).default("127.0.0.1"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  RPC_TIMEOUT_MS: ms(5_000),
  INSTANCE_ID: z.string().regex(ID_PATTERN).optional(),
};

const urls = {
  MESSAGING_URL: url("http://127.0.0.1:8081"),
  NOTIFICATION_URL: url("http://127.0.0.1:8082"),
  PERSISTENCE_URL: url("http://127.0.0.1:8083"),
};

const backends = {
  CHAT_STORE: z.enum(["memory"]).default("memory"),
  CHAT_REGISTRY: z.enum(["memory"]).default("memory"),
  CHAT_BUS: z.enum(["memory"]).default("memory"),
};

/** CommonConfig is what every service reads. */
export interface CommonConfig {
  region: string;
  peers: string[];
  host: string;
  port: number;
  logLevel: string;
  rpcTimeoutMs: number;
  instanceId: string;
  backends: { store: "memory"; registry: "memory"; bus: "memory" };
}

/** ServiceUrls are where the other services of the region listen. */
export interface ServiceUrls {
  messaging: string;
  notification: string;
  persistence: string;
}

/** GatewayConfig configures the gateway. */
export interface GatewayConfig extends CommonConfig {
  urls: ServiceUrls;
  auth: { jwksUrl: string; issuer?: string; audience?: string };
  heartbeatIntervalMs: number;
  sessionTtlMs: number;
  maxFrameBytes: number;
  drainMs: number;
  framesPerSecond: number;
}

/** MessagingConfig configures messaging. */
export interface MessagingConfig extends CommonConfig {
  urls: ServiceUrls;
  maxGroupSize: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
  sweepMaxAgeMs: number;
}

/** NotificationConfig configures notification. */
export interface NotificationConfig extends CommonConfig {
  urls: ServiceUrls;
  push: { provider: "log" | "webhook"; webhookUrl?: string; delayMs: number };
  replayPageSize: number;
}

/** PersistenceConfig configures persistence. */
export interface PersistenceConfig extends CommonConfig {}

/** ConfigError names every invalid variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

function parse<T extends z.ZodRawShape>(shape: T, env: NodeJS.ProcessEnv): z.infer<z.ZodObject<T>> {
  const result = z.object(shape).safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => {
      const name = String(i.path[0] ?? "?");
      const got = env[name];
      return `  ${name}: ${i.message}${got === undefined ? "" : ` (got ${JSON.stringify(got)})`}`;
    });
    throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
  }
  return result.data;
}

function urlsOf(e: z.infer<z.ZodObject<typeof urls>>): ServiceUrls {
  return {
    messaging: e.MESSAGING_URL,
    notification: e.NOTIFICATION_URL,
    persistence: e.PERSISTENCE_URL,
  };
}

function commonOf(
  e: z.infer<z.ZodObject<typeof common & typeof backends>>,
  p: number,
  service: string,
) {
  return {
    region: e.CHAT_REGION,
    peers: e.CHAT_PEER_REGIONS.filter((r) => r !== e.CHAT_REGION),
    host: e.HOST,
    port: p,
    logLevel: e.LOG_LEVEL,
    rpcTimeoutMs: e.RPC_TIMEOUT_MS,
    instanceId: e.INSTANCE_ID ?? randomId(service),
    backends: { store: e.CHAT_STORE, registry: e.CHAT_REGISTRY, bus: e.CHAT_BUS },
  };
}

/** loadGatewayConfig reads the gateway's configuration from `env`. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const e = parse(
    {
      ...common,
      ...backends,
      ...urls,
      PORT: port(8080),
      AUTH_JWKS_URL: z.url({ protocol: /^https?$/ }),
      AUTH_ISSUER: z.string().min(1).optional(),
      AUTH_AUDIENCE: z.string().min(1).optional(),
      HEARTBEAT_INTERVAL_MS: ms(15_000),
      SESSION_TTL_MS: ms(60_000),
      MAX_FRAME_BYTES: z.coerce.number().int().min(1024).max(1_048_576).default(65_536),
      DRAIN_MS: ms(20_000),
      FRAMES_PER_SECOND: z.coerce.number().int().min(1).max(10_000).default(50),
    },
    env,
  );
  return {
    ...commonOf(e, e.PORT, "gateway"),
    urls: urlsOf(e),
    auth: { jwksUrl: e.AUTH_JWKS_URL, issuer: e.AUTH_ISSUER, audience: e.AUTH_AUDIENCE },
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    sessionTtlMs: e.SESSION_TTL_MS,
    maxFrameBytes: e.MAX_FRAME_BYTES,
    drainMs: e.DRAIN_MS,
    framesPerSecond: e.FRAMES_PER_SECOND,
  };
}

/** loadMessagingConfig reads messaging's configuration from `env`. */
export function loadMessagingConfig(env: NodeJS.ProcessEnv = process.env): MessagingConfig {
  const e = parse(
    {
      ...common,
      ...backends,
      ...urls,
      PORT: port(8081),
      MAX_GROUP_SIZE: z.coerce.number().int().min(2).max(10_000).default(256),
      SWEEP_INTERVAL_MS: ms(5_000),
      SWEEP_MIN_AGE_MS: ms(5_000),
      SWEEP_MAX_AGE_MS: ms(3_600_000),
    },
    env,
  );
  return {
    ...commonOf(e, e.PORT, "messaging"),
    urls: urlsOf(e),
    maxGroupSize: e.MAX_GROUP_SIZE,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    sweepMinAgeMs: e.SWEEP_MIN_AGE_MS,
    sweepMaxAgeMs: e.SWEEP_MAX_AGE_MS,
  };
}

/** loadNotificationConfig reads notification's configuration from `env`. */
export function loadNotificationConfig(env: NodeJS.ProcessEnv = process.env): NotificationConfig {
  const e = parse(
    {
      ...common,
      ...backends,
      ...urls,
      PORT: port(8082),
      PUSH_PROVIDER: z.enum(["log", "webhook"]).default("log"),
      PUSH_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
      PUSH_DELAY_MS: ms(10_000),
      REPLAY_PAGE_SIZE: z.coerce.number().int().min(1).max(1000).default(500),
    },
    env,
  );
  if (e.PUSH_PROVIDER === "webhook" && !e.PUSH_WEBHOOK_URL) {
    throw new ConfigError(
      "invalid configuration:\n  PUSH_WEBHOOK_URL: required when PUSH_PROVIDER=webhook",
    );
  }
  return {
    ...commonOf(e, e.PORT, "notification"),
    urls: urlsOf(e),
    push: { provider: e.PUSH_PROVIDER, webhookUrl: e.PUSH_WEBHOOK_URL, delayMs: e.PUSH_DELAY_MS },
    replayPageSize: e.REPLAY_PAGE_SIZE,
  };
}

/** loadPersistenceConfig reads persistence's configuration from `env`. */
export function loadPersistenceConfig(env: NodeJS.ProcessEnv = process.env): PersistenceConfig {
  const e = parse({ ...common, ...backends, PORT: port(8083) }, env);
  return commonOf(e, e.PORT, "persistence");
}
