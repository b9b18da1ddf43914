import { createPrivateKey } from "node:crypto";
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
/**
 * CHAT_PEER_REGIONS lists the other regions, comma-separated. A region's mirrored topics are
 * named `<prefix>.<topic>`; the prefix is the region's name (as the local topic mirror names
 * them) unless given as `region=prefix` (MSK Replicator prefixes the source cluster's alias).
 */
const peerList = z
  .string()
  .default("")
  .transform((s) =>
    s
      .split(",")
      .map((r) => r.trim())
      .filter((r) => r !== "")
      .map((entry) => {
        const [region = "", prefix] = entry.split("=").map((x) => x.trim());
        return { region, topicPrefix: prefix ?? region };
      }),
  )
  .pipe(
    z.array(
      z.object({
        region,
        topicPrefix: z
          .string()
          .regex(/^[A-Za-z0-9._-]{1,64}$/, "topic prefixes are letters, digits, '.', '_' or '-'"),
      }),
    ),
  );

/** PUSH_PROVIDERS are what PUSH_PROVIDER may list (push/create.ts). */
export const PUSH_PROVIDERS = ["log", "webhook", "fcm", "apns"] as const;
export type PushProviderName = (typeof PUSH_PROVIDERS)[number];

/** PUSH_PROVIDER lists push providers, comma-separated; each serves its token platforms. */
const pushProviders = z
  .string()
  .default("log")
  .transform((s) => [
    ...new Set(
      s
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== ""),
    ),
  ])
  .pipe(
    z
      .array(z.enum(PUSH_PROVIDERS, "must be log, webhook, fcm or apns, comma-separated"))
      .min(1, "must name at least one of log, webhook, fcm, apns"),
  );

/**
 * A private key in PEM, checked by loading it, so that a wrong or truncated secret stops the
 * process at start rather than failing every push. A literal `\n` (a PEM flattened into one
 * line when stored as a parameter) is read as a line break.
 */
const privateKeyPem = (kind: "rsa" | "p256", message: string) =>
  z
    .string()
    .transform((s) => s.replaceAll("\\n", "\n"))
    .refine((pem) => {
      try {
        const k = createPrivateKey(pem);
        return kind === "rsa"
          ? k.asymmetricKeyType === "rsa"
          : k.asymmetricKeyType === "ec" && k.asymmetricKeyDetails?.namedCurve === "prime256v1";
      } catch {
        return false;
      }
    }, message);

/** FCM_SERVICE_ACCOUNT is a Google service account's JSON key, as the console downloads it. */
const serviceAccountKey = z
  .string()
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be a service account's JSON key" });
      return z.NEVER;
    }
  })
  .pipe(
    z.object(
      {
        project_id: z.string("the key's project_id must be a string").min(1).optional(),
        private_key_id: z.string("the key's private_key_id must be a string").optional(),
        client_email: z
          .string("the key has no client_email")
          .regex(/^[^@\s]+@[^@\s]+$/, "the key's client_email must be an email address"),
        private_key: privateKeyPem("rsa", "the key's private_key must be an RSA private key (PEM)"),
        token_uri: z
          .url({ protocol: /^https?$/, error: "the key's token_uri must be an http(s) URL" })
          .optional(),
      },
      "must be a service account's JSON key",
    ),
  );

/** An Apple id of a key or team: 10 letters or digits. */
const appleId = (what: string) =>
  z.string().regex(/^[A-Z0-9]{10}$/, `must be the 10-character ${what}`);

/** SECRETS are never repeated in an error message: naming the variable is enough. */
const SECRETS = new Set(["FCM_SERVICE_ACCOUNT", "APNS_KEY"]);

const common = {
  CHAT_REGION: region.default("local"),
  CHAT_PEER_REGIONS: peerList,
  HOST: z.string().min(1).default("127.0.0.1"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  RPC_TIMEOUT_MS: ms(5_000),
  INSTANCE_ID: z.string().regex(ID_PATTERN).optional(),
  // Tracing (tracing.ts): off unless otlp; the exporter reads the standard OTEL_* variables.
  OTEL_TRACES_EXPORTER: z.enum(["none", "otlp"]).default("none"),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
};

const urls = {
  MESSAGING_URL: url("http://127.0.0.1:8081"),
  NOTIFICATION_URL: url("http://127.0.0.1:8082"),
  PERSISTENCE_URL: url("http://127.0.0.1:8083"),
};

/**
 * A bound of the embedded stores' window: a whole number, 0 for none (then Infinity). The
 * defaults and why: services/persistence/README.md, "The embedded stores".
 */
const bound = (fallback: number, max: number) =>
  z.coerce
    .number()
    .int("must be a whole number")
    .min(0, "must be 0 (no limit) or more")
    .max(max)
    .default(fallback)
    .transform((n) => (n === 0 ? Number.POSITIVE_INFINITY : n));

const bool = z
  .enum(["true", "false", "1", "0"], "must be true or false")
  .transform((v) => v === "true" || v === "1");
const brokerList = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((b) => b.trim())
      .filter((b) => b !== ""),
  )
  .pipe(
    z.array(
      z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, "must be host:port pairs, comma-separated"),
    ),
  );

const backends = {
  CHAT_STORE: z.enum(["memory", "dynamodb"]).default("memory"),
  CHAT_REGISTRY: z.enum(["memory", "redis"]).default("memory"),
  CHAT_BUS: z.enum(["memory", "kafka"]).default("memory"),
  DYNAMODB_TABLE: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{3,255}$/, "must be a DynamoDB table name")
    .default("connect-chat"),
  DYNAMODB_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  DYNAMODB_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(6),
  AWS_REGION: z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .optional(),
  INBOX_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  // The window the embedded (memory) stores keep: per conversation and per inbox, by count and
  // by age, so that a long-running `npm start` stays bounded whatever went through it.
  MEMORY_HISTORY_MESSAGES: bound(1_000, 100_000_000),
  MEMORY_HISTORY_MINUTES: bound(1_440, 5_256_000),
  MEMORY_INBOX_ENTRIES: bound(1_000, 100_000_000),
  MEMORY_INBOX_MINUTES: bound(1_440, 5_256_000),
  KAFKA_BROKERS: brokerList.optional(),
  KAFKA_CLUSTER_ARN: z
    .string()
    .regex(/^arn:aws[a-z-]*:kafka:[a-z0-9-]+:\d{12}:cluster\/.+/, "must be an MSK cluster ARN")
    .optional(),
  KAFKA_TLS: bool.optional(),
  KAFKA_SASL: z.enum(["none", "aws-msk-iam"]).optional(),
  KAFKA_CREATE_TOPICS: bool.default(false),
  KAFKA_TOPIC_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(12),
  // Unset: derived from the cluster (as many copies as brokers, up to 3; topic-admin.ts).
  KAFKA_REPLICATION: z.coerce.number().int().min(1).max(5).optional(),
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(30_000),
  KAFKA_MAX_WAIT_MS: z.coerce.number().int().min(10).max(10_000).default(250),
  KAFKA_PUBLISH_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(3_000),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_PASSWORD: z.string().optional(),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{0,32}$/, "must be up to 32 letters, digits, ':', '_' or '-'")
    .default("chat:"),
};

/** RegistryBackend is where sessions and the per-gateway delivery channels live. */
export type RegistryBackend =
  | { kind: "memory" }
  | { kind: "redis"; url: string; password?: string; keyPrefix: string };

/**
 * StoreBackend is where the chat database and inboxes live. The memory stores keep a window
 * (Infinity: no bound): per conversation its newest historyMessages messages stored within
 * historyRetentionMs, per user and region the newest inboxEntries entries within
 * inboxRetentionMs.
 */
export type StoreBackend =
  | {
      kind: "memory";
      historyMessages: number;
      historyRetentionMs: number;
      inboxEntries: number;
      inboxRetentionMs: number;
    }
  | {
      kind: "dynamodb";
      table: string;
      endpoint?: string;
      awsRegion: string;
      maxAttempts: number;
      inboxRetentionDays: number;
    };

/** BusBackend is the region's message bus. */
export type BusBackend =
  | { kind: "memory" }
  | {
      kind: "kafka";
      brokers: string[];
      clusterArn?: string;
      tls: boolean;
      sasl: "none" | "aws-msk-iam";
      clientId: string;
      createTopics?: { partitions: number; replication?: number };
      sessionTimeoutMs: number;
      maxWaitMs: number;
      publishTimeoutMs: number;
    };

/** Backends are the adapters configured for each port. */
export interface Backends {
  store: StoreBackend;
  registry: RegistryBackend;
  bus: BusBackend;
}

/** CommonConfig is what every service reads. */
export interface CommonConfig {
  region: string;
  /** peers are the other regions (whose replicated inbox entries this region reads). */
  peers: string[];
  /** mirrors are the prefixes of the other regions' mirrored topics on this region's bus. */
  mirrors: string[];
  host: string;
  port: number;
  logLevel: string;
  rpcTimeoutMs: number;
  instanceId: string;
  backends: Backends;
  /**
   * internalAuth is this service's part of service-to-service authentication (internal-auth.ts):
   * `key`, its own private key (a service that calls others); `peers`, the public keys of the
   * services it accepts calls from (a service others call). Both are JSON, checked at start.
   */
  internalAuth: { key?: string; peers?: string };
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
  /**
   * admin is the internal listener of the operator API, reflection and metrics (never behind
   * the public load balancer); operators present a token with `operatorAudience`.
   */
  admin: { port: number; operatorAudience: string };
  heartbeatIntervalMs: number;
  sessionTtlMs: number;
  maxFrameBytes: number;
  drainMs: number;
  framesPerSecond: number;
  /**
   * What one client may cost (docs/security.md): bytes written to a connection and not yet
   * taken by the client before it is closed as a slow reader (1013); requests a connection may
   * have running or waiting; page requests (history, conversations, sync) among them that run
   * at once; bytes of one history answer; connections of one user in the region (4429).
   */
  maxBufferedBytes: number;
  maxRequestsInFlight: number;
  maxPageRequestsInFlight: number;
  maxHistoryPageBytes: number;
  maxConnectionsPerUser: number;
  /**
   * ackLingerMs is how long the delivery acks of the gateway's connections gather before they
   * leave in one BatchMarkDelivered: nobody waits on an ack, and at low load each would
   * otherwise cost a call and the reads and writes behind it.
   */
  ackLingerMs: number;
  /** canaryIntervalMs is how often the delivery canary goes round; canaryTimeoutMs how long it may fail. */
  canaryIntervalMs: number;
  canaryTimeoutMs: number;
  /**
   * cloudwatchMetrics writes the gateway's connections and lost canaries to stdout every 30 s
   * in CloudWatch's Embedded Metric Format (what the deployment scales and alarms on).
   */
  cloudwatchMetrics: boolean;
  /** ecsMetadataUri is set by ECS; the gateway watches it to drain before being stopped. */
  ecsMetadataUri?: string;
}

/** MessagingConfig configures messaging. */
export interface MessagingConfig extends CommonConfig {
  urls: ServiceUrls;
  maxGroupSize: number;
  sweepIntervalMs: number;
  sweepMinAgeMs: number;
  sweepMaxAgeMs: number;
  /** receiptWindowMs is how long receipt changes of a conversation are merged before relaying. */
  receiptWindowMs: number;
  /**
   * replicationWaitMs is how long a request this region cannot authorize yet waits for table
   * replication (only with peer regions; 0 without).
   */
  replicationWaitMs: number;
  /**
   * conversationChangesPerMinute is how many conversations a user may create, plus membership
   * changes they may make (leaving excepted), per minute per messaging task (0: no limit).
   */
  conversationChangesPerMinute: number;
  /**
   * takeover: a peer region silent for afterMs is dead; what it appended from windowMs before
   * it fell silent is delivered from here, looked at every intervalMs.
   */
  takeover: { afterMs: number; windowMs: number; intervalMs: number };
  /**
   * crashAfterAppend, for failure tests only: the process kills itself after persisting a
   * message with this text and before publishing it (the dual-write hole).
   */
  crashAfterAppend?: string;
}

/** NotificationConfig configures notification. */
export interface NotificationConfig extends CommonConfig {
  urls: ServiceUrls;
  push: {
    /** providers are PUSH_PROVIDER's, each serving its token platforms (push/create.ts). */
    providers: PushProviderName[];
    webhookUrl?: string;
    /** fcm is set when providers include fcm: FCM HTTP v1 with a service account's key. */
    fcm?: {
      projectId: string;
      serviceAccount: {
        clientEmail: string;
        privateKey: string;
        privateKeyId?: string;
        tokenUri: string;
      };
      endpoint: string;
      /** tokenUrl is FCM_TOKEN_URL, else the key's token_uri. */
      tokenUrl: string;
    };
    /** apns is set when providers include apns: token-based APNs for one app (topic). */
    apns?: { key: string; keyId: string; teamId: string; topic: string; endpoint: string };
    delayMs: number;
    /** maxDevicesPerUser caps each user's push tokens; registering more forgets the oldest. */
    maxDevicesPerUser: number;
  };
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
      const shown = got === undefined || SECRETS.has(name) ? "" : ` (got ${JSON.stringify(got)})`;
      return `  ${name}: ${i.message}${shown}`;
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
    peers: e.CHAT_PEER_REGIONS.filter((p) => p.region !== e.CHAT_REGION).map((p) => p.region),
    mirrors: e.CHAT_PEER_REGIONS.filter((p) => p.region !== e.CHAT_REGION).map(
      (p) => p.topicPrefix,
    ),
    host: e.HOST,
    port: p,
    logLevel: e.LOG_LEVEL,
    rpcTimeoutMs: e.RPC_TIMEOUT_MS,
    instanceId: e.INSTANCE_ID ?? randomId(service),
    backends: backendsOf(e, service),
  };
}

function backendsOf(
  e: z.infer<z.ZodObject<typeof backends & typeof common>>,
  service: string,
): Backends {
  const missing = (name: string, why: string) =>
    new ConfigError(`invalid configuration:\n  ${name}: required when ${why}`);
  let registry: RegistryBackend = { kind: "memory" };
  if (e.CHAT_REGISTRY === "redis") {
    if (!e.REDIS_URL) throw missing("REDIS_URL", "CHAT_REGISTRY=redis");
    registry = {
      kind: "redis",
      url: e.REDIS_URL,
      password: e.REDIS_PASSWORD,
      keyPrefix: e.REDIS_KEY_PREFIX,
    };
  }
  let store: StoreBackend = {
    kind: "memory",
    historyMessages: e.MEMORY_HISTORY_MESSAGES,
    historyRetentionMs: e.MEMORY_HISTORY_MINUTES * 60_000,
    inboxEntries: e.MEMORY_INBOX_ENTRIES,
    inboxRetentionMs: e.MEMORY_INBOX_MINUTES * 60_000,
  };
  if (e.CHAT_STORE === "dynamodb") {
    store = {
      kind: "dynamodb",
      table: e.DYNAMODB_TABLE,
      endpoint: e.DYNAMODB_ENDPOINT,
      awsRegion: e.AWS_REGION ?? e.CHAT_REGION,
      maxAttempts: e.DYNAMODB_MAX_ATTEMPTS,
      inboxRetentionDays: e.INBOX_RETENTION_DAYS,
    };
  }
  let bus: BusBackend = { kind: "memory" };
  if (e.CHAT_BUS === "kafka") {
    if (!e.KAFKA_BROKERS?.length && !e.KAFKA_CLUSTER_ARN) {
      throw missing("KAFKA_BROKERS or KAFKA_CLUSTER_ARN", "CHAT_BUS=kafka");
    }
    const msk = e.KAFKA_CLUSTER_ARN !== undefined;
    bus = {
      kind: "kafka",
      brokers: e.KAFKA_BROKERS ?? [],
      clusterArn: e.KAFKA_CLUSTER_ARN,
      tls: e.KAFKA_TLS ?? msk,
      sasl: e.KAFKA_SASL ?? (msk ? "aws-msk-iam" : "none"),
      clientId: `connect-chat-${service}`,
      createTopics: e.KAFKA_CREATE_TOPICS
        ? { partitions: e.KAFKA_TOPIC_PARTITIONS, replication: e.KAFKA_REPLICATION }
        : undefined,
      sessionTimeoutMs: e.KAFKA_SESSION_TIMEOUT_MS,
      maxWaitMs: e.KAFKA_MAX_WAIT_MS,
      publishTimeoutMs: e.KAFKA_PUBLISH_TIMEOUT_MS,
    };
  }
  return { store, registry, bus };
}

/**
 * A caller's own private key and a callee's trusted public keys (internal-auth.ts): required to
 * run the service (runService says so at start), not to read its other settings.
 */
const signingKey = { INTERNAL_AUTH_KEY: z.string().min(1).optional() };
const peerKeys = { INTERNAL_AUTH_PEERS: z.string().min(1).optional() };

/** SHAPES are the variables each service reads, with their validation and defaults. */
const SHAPES = {
  gateway: {
    ...common,
    ...backends,
    ...urls,
    ...signingKey,
    PORT: port(8080),
    ADMIN_PORT: port(9080),
    AUTH_JWKS_URL: z.url({ protocol: /^https?$/ }),
    AUTH_ISSUER: z.string().min(1).optional(),
    AUTH_AUDIENCE: z.string().min(1).optional(),
    AUTH_OPERATOR_AUDIENCE: z.string().min(1).default("connect-chat-operator"),
    HEARTBEAT_INTERVAL_MS: ms(15_000),
    SESSION_TTL_MS: ms(60_000),
    MAX_FRAME_BYTES: z.coerce.number().int().min(1024).max(1_048_576).default(65_536),
    DRAIN_MS: ms(20_000),
    FRAMES_PER_SECOND: z.coerce.number().int().min(1).max(10_000).default(50),
    CANARY_INTERVAL_MS: ms(2_000),
    CANARY_TIMEOUT_MS: ms(10_000),
    ECS_CONTAINER_METADATA_URI_V4: z.url({ protocol: /^https?$/ }).optional(),
    CLOUDWATCH_METRICS: bool.default(false),
    MAX_BUFFERED_BYTES: z.coerce.number().int().min(65_536).max(268_435_456).default(4_194_304),
    MAX_REQUESTS_IN_FLIGHT: z.coerce.number().int().min(1).max(10_000).default(64),
    MAX_PAGE_REQUESTS_IN_FLIGHT: z.coerce.number().int().min(1).max(1_000).default(2),
    MAX_HISTORY_PAGE_BYTES: z.coerce
      .number()
      .int()
      .min(16_384, "must be at least 16384 (one message of the largest size)")
      .max(268_435_456)
      .default(1_048_576),
    MAX_CONNECTIONS_PER_USER: z.coerce.number().int().min(1).max(10_000).default(10),
    ACK_LINGER_MS: z.coerce.number().int().min(0).max(1_000).default(50),
  },
  messaging: {
    ...common,
    ...backends,
    ...urls,
    ...signingKey,
    ...peerKeys,
    PORT: port(8081),
    MAX_GROUP_SIZE: z.coerce.number().int().min(2).max(10_000).default(256),
    FAULT_CRASH_AFTER_APPEND: z.string().min(1).optional(),
    SWEEP_INTERVAL_MS: ms(5_000),
    SWEEP_MIN_AGE_MS: ms(5_000),
    SWEEP_MAX_AGE_MS: ms(3_600_000),
    RECEIPT_WINDOW_MS: z.coerce.number().int().min(0).max(10_000).default(250),
    REPLICATION_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(3_000),
    CONVERSATION_CHANGES_PER_MINUTE: z.coerce.number().int().min(0).max(100_000).default(30),
    TAKEOVER_AFTER_MS: ms(10_000),
    TAKEOVER_WINDOW_MS: ms(60_000),
    TAKEOVER_INTERVAL_MS: ms(1_000),
  },
  notification: {
    ...common,
    ...backends,
    ...urls,
    ...signingKey,
    ...peerKeys,
    PORT: port(8082),
    PUSH_PROVIDER: pushProviders,
    PUSH_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
    FCM_PROJECT_ID: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.:-]{0,99}$/, "must be the Firebase project's id")
      .optional(),
    FCM_SERVICE_ACCOUNT: serviceAccountKey.optional(),
    FCM_ENDPOINT: url("https://fcm.googleapis.com"),
    FCM_TOKEN_URL: z.url({ protocol: /^https?$/ }).optional(),
    APNS_KEY: privateKeyPem("p256", "must be the .p8 signing key (PEM, P-256)").optional(),
    APNS_KEY_ID: appleId("key id").optional(),
    APNS_TEAM_ID: appleId("team id").optional(),
    APNS_TOPIC: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$/, "must be the app's bundle id")
      .optional(),
    APNS_ENDPOINT: url("https://api.push.apple.com"),
    PUSH_DELAY_MS: ms(10_000),
    MAX_PUSH_DEVICES_PER_USER: z.coerce.number().int().min(1).max(1_000).default(20),
    REPLAY_PAGE_SIZE: z.coerce.number().int().min(1).max(1000).default(500),
  },
  persistence: { ...common, ...backends, ...peerKeys, PORT: port(8083) },
  "kafka-topics": { ...common, ...backends },
};

/** VARIABLES names every environment variable each service reads (for docs and deploy checks). */
export const VARIABLES: Record<keyof typeof SHAPES, string[]> = {
  gateway: Object.keys(SHAPES.gateway),
  messaging: Object.keys(SHAPES.messaging),
  notification: Object.keys(SHAPES.notification),
  persistence: Object.keys(SHAPES.persistence),
  "kafka-topics": Object.keys(SHAPES["kafka-topics"]),
};

/** loadGatewayConfig reads the gateway's configuration from `env`. */
export function loadGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const e = parse(SHAPES.gateway, env);
  if (e.CANARY_TIMEOUT_MS < 2 * e.CANARY_INTERVAL_MS) {
    throw new ConfigError(
      `invalid configuration:\n  CANARY_TIMEOUT_MS: must be at least twice CANARY_INTERVAL_MS (${e.CANARY_INTERVAL_MS}), got ${e.CANARY_TIMEOUT_MS}`,
    );
  }
  if (e.MAX_PAGE_REQUESTS_IN_FLIGHT > e.MAX_REQUESTS_IN_FLIGHT) {
    throw new ConfigError(
      `invalid configuration:\n  MAX_PAGE_REQUESTS_IN_FLIGHT: must be at most MAX_REQUESTS_IN_FLIGHT (${e.MAX_REQUESTS_IN_FLIGHT}), got ${e.MAX_PAGE_REQUESTS_IN_FLIGHT}`,
    );
  }
  if (e.MAX_HISTORY_PAGE_BYTES > e.MAX_BUFFERED_BYTES) {
    throw new ConfigError(
      `invalid configuration:\n  MAX_HISTORY_PAGE_BYTES: must be at most MAX_BUFFERED_BYTES (${e.MAX_BUFFERED_BYTES}), so that a page fits in a connection's buffer, got ${e.MAX_HISTORY_PAGE_BYTES}`,
    );
  }
  return {
    ...commonOf(e, e.PORT, "gateway"),
    internalAuth: { key: e.INTERNAL_AUTH_KEY },
    urls: urlsOf(e),
    auth: { jwksUrl: e.AUTH_JWKS_URL, issuer: e.AUTH_ISSUER, audience: e.AUTH_AUDIENCE },
    admin: { port: e.ADMIN_PORT, operatorAudience: e.AUTH_OPERATOR_AUDIENCE },
    heartbeatIntervalMs: e.HEARTBEAT_INTERVAL_MS,
    sessionTtlMs: e.SESSION_TTL_MS,
    maxFrameBytes: e.MAX_FRAME_BYTES,
    drainMs: e.DRAIN_MS,
    framesPerSecond: e.FRAMES_PER_SECOND,
    maxBufferedBytes: e.MAX_BUFFERED_BYTES,
    maxRequestsInFlight: e.MAX_REQUESTS_IN_FLIGHT,
    maxPageRequestsInFlight: e.MAX_PAGE_REQUESTS_IN_FLIGHT,
    maxHistoryPageBytes: e.MAX_HISTORY_PAGE_BYTES,
    maxConnectionsPerUser: e.MAX_CONNECTIONS_PER_USER,
    ackLingerMs: e.ACK_LINGER_MS,
    canaryIntervalMs: e.CANARY_INTERVAL_MS,
    canaryTimeoutMs: e.CANARY_TIMEOUT_MS,
    ecsMetadataUri: e.ECS_CONTAINER_METADATA_URI_V4,
    cloudwatchMetrics: e.CLOUDWATCH_METRICS,
  };
}

/** loadMessagingConfig reads messaging's configuration from `env`. */
export function loadMessagingConfig(env: NodeJS.ProcessEnv = process.env): MessagingConfig {
  const e = parse(SHAPES.messaging, env);
  return {
    ...commonOf(e, e.PORT, "messaging"),
    internalAuth: { key: e.INTERNAL_AUTH_KEY, peers: e.INTERNAL_AUTH_PEERS },
    urls: urlsOf(e),
    maxGroupSize: e.MAX_GROUP_SIZE,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
    sweepMinAgeMs: e.SWEEP_MIN_AGE_MS,
    sweepMaxAgeMs: e.SWEEP_MAX_AGE_MS,
    receiptWindowMs: e.RECEIPT_WINDOW_MS,
    replicationWaitMs: e.CHAT_PEER_REGIONS.some((p) => p.region !== e.CHAT_REGION)
      ? e.REPLICATION_WAIT_MS
      : 0,
    conversationChangesPerMinute: e.CONVERSATION_CHANGES_PER_MINUTE,
    takeover: {
      afterMs: e.TAKEOVER_AFTER_MS,
      windowMs: e.TAKEOVER_WINDOW_MS,
      intervalMs: e.TAKEOVER_INTERVAL_MS,
    },
    crashAfterAppend: e.FAULT_CRASH_AFTER_APPEND,
  };
}

/** loadNotificationConfig reads notification's configuration from `env`. */
export function loadNotificationConfig(env: NodeJS.ProcessEnv = process.env): NotificationConfig {
  const e = parse(SHAPES.notification, env);
  const uses = new Set(e.PUSH_PROVIDER);
  const missing: string[] = [];
  const need = (provider: PushProviderName, names: Record<string, unknown>) => {
    if (!uses.has(provider)) return;
    for (const [name, value] of Object.entries(names)) {
      if (value === undefined) {
        missing.push(`  ${name}: required when PUSH_PROVIDER includes ${provider}`);
      }
    }
  };
  need("webhook", { PUSH_WEBHOOK_URL: e.PUSH_WEBHOOK_URL });
  const key = e.FCM_SERVICE_ACCOUNT;
  need("fcm", {
    FCM_SERVICE_ACCOUNT: key,
    // The key names its project; FCM_PROJECT_ID is for sending to another one.
    FCM_PROJECT_ID: key ? (e.FCM_PROJECT_ID ?? key.project_id) : "",
  });
  need("apns", {
    APNS_KEY: e.APNS_KEY,
    APNS_KEY_ID: e.APNS_KEY_ID,
    APNS_TEAM_ID: e.APNS_TEAM_ID,
    APNS_TOPIC: e.APNS_TOPIC,
  });
  if (missing.length) throw new ConfigError(`invalid configuration:\n${missing.join("\n")}`);
  const tokenUri = key?.token_uri ?? "https://oauth2.googleapis.com/token";
  return {
    ...commonOf(e, e.PORT, "notification"),
    internalAuth: { key: e.INTERNAL_AUTH_KEY, peers: e.INTERNAL_AUTH_PEERS },
    urls: urlsOf(e),
    push: {
      providers: e.PUSH_PROVIDER,
      webhookUrl: e.PUSH_WEBHOOK_URL,
      fcm:
        uses.has("fcm") && key
          ? {
              projectId: (e.FCM_PROJECT_ID ?? key.project_id) as string,
              serviceAccount: {
                clientEmail: key.client_email,
                privateKey: key.private_key,
                privateKeyId: key.private_key_id,
                tokenUri,
              },
              endpoint: e.FCM_ENDPOINT,
              tokenUrl: e.FCM_TOKEN_URL ?? tokenUri,
            }
          : undefined,
      apns:
        uses.has("apns") && e.APNS_KEY && e.APNS_KEY_ID && e.APNS_TEAM_ID && e.APNS_TOPIC
          ? {
              key: e.APNS_KEY,
              keyId: e.APNS_KEY_ID,
              teamId: e.APNS_TEAM_ID,
              topic: e.APNS_TOPIC,
              endpoint: e.APNS_ENDPOINT,
            }
          : undefined,
      delayMs: e.PUSH_DELAY_MS,
      maxDevicesPerUser: e.MAX_PUSH_DEVICES_PER_USER,
    },
    replayPageSize: e.REPLAY_PAGE_SIZE,
  };
}

/** loadPersistenceConfig reads persistence's configuration from `env`. */
export function loadPersistenceConfig(env: NodeJS.ProcessEnv = process.env): PersistenceConfig {
  const e = parse(SHAPES.persistence, env);
  return { ...commonOf(e, e.PORT, "persistence"), internalAuth: { peers: e.INTERNAL_AUTH_PEERS } };
}

/** KafkaTopicsConfig is what the kafka-topics job creates, and where. */
export interface KafkaTopicsConfig {
  region: string;
  logLevel: string;
  /** mirrors are the prefixes of the other regions' topics copied here (CHAT_PEER_REGIONS). */
  mirrors: string[];
  bus: Extract<BusBackend, { kind: "kafka" }>;
  partitions: number;
  /** replication is KAFKA_REPLICATION; unset, derived from the cluster. */
  replication?: number;
}

/** loadKafkaTopicsConfig reads the kafka-topics job's configuration from `env`. */
export function loadKafkaTopicsConfig(env: NodeJS.ProcessEnv = process.env): KafkaTopicsConfig {
  const e = parse(SHAPES["kafka-topics"], env);
  const c = commonOf(e, 0, "kafka-topics");
  const bus = c.backends.bus;
  if (bus.kind !== "kafka") {
    throw new ConfigError(
      "invalid configuration:\n  CHAT_BUS: the kafka-topics job creates Kafka topics; set CHAT_BUS=kafka",
    );
  }
  return {
    region: c.region,
    logLevel: c.logLevel,
    mirrors: c.mirrors,
    bus,
    partitions: e.KAFKA_TOPIC_PARTITIONS,
    replication: e.KAFKA_REPLICATION,
  };
}
