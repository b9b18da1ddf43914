import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient } from "@connectrpc/connect";
import { DEV_AUDIENCE, type DevIssuer, startDevIssuer } from "../../dev/issuer.ts";
import { GatewayService } from "../../gen/chat/v1/gateway_pb.ts";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { createJwtVerifier } from "../gateway/auth.ts";
import { build as buildGateway, type GatewayApp } from "../gateway/server.ts";
import type { MessagingHooks } from "../messaging/handler.ts";
import { build as buildMessaging } from "../messaging/server.ts";
import { createPushProvider } from "../notification/push/create.ts";
import type { PushProvider } from "../notification/push/push-provider.ts";
import { build as buildNotification } from "../notification/server.ts";
import { build as buildPersistence } from "../persistence/server.ts";
import { openShared, openStores, type Shared, type Stores } from "../shared/backends.ts";
import { createServiceClients } from "../shared/clients.ts";
import {
  loadGatewayConfig,
  loadMessagingConfig,
  loadNotificationConfig,
  loadPersistenceConfig,
} from "../shared/config.ts";
import {
  type Audience,
  generateKeySet,
  type Identity,
  type InternalKeySet,
  OPERATOR_MAX_TTL_S,
  parsePeerKeys,
  signerOf,
} from "../shared/internal-auth.ts";
import { createLogger, type Logger, silentLogger } from "../shared/logger.ts";
import { createMetrics } from "../shared/metrics.ts";
import type { DeliveryChannel } from "../shared/ports/delivery-channel.ts";
import { inProcessTransport, type RunningService, serveApp } from "../shared/service-app.ts";

/** LocalRegionOptions tune a local region; everything else comes from `env` as in production. */
export interface LocalRegionOptions {
  env?: NodeJS.ProcessEnv;
  /** ports of gateway, messaging, notification, persistence and the dev issuer; 0 picks any. */
  ports?: {
    gateway: number;
    gatewayAdmin: number;
    messaging: number;
    notification: number;
    persistence: number;
    issuer: number;
  };
  /** log is where every service logs; silent by default (tests), JSON to stdout for npm start. */
  log?: Logger | "stdout";
  hooks?: MessagingHooks;
  push?: PushProvider;
  /** channel replaces the in-memory delivery channel (tests use a lossy one). */
  channel?: DeliveryChannel;
  /**
   * backends, when given, are used instead of opening the configured ones, and outlive the
   * region: a region stopped or killed and started again over them finds its data (the
   * two-region runner keeps each region's stores and bus as AWS keeps a region's tables).
   */
  backends?: { stores: Stores; shared: Shared };
  /** issuer, when given, signs tokens instead of a new dev issuer (one identity provider). */
  issuer?: DevIssuer;
  /** internalKeys, when given, are the services' keys; by default the region makes its own. */
  internalKeys?: InternalKeySet;
  /**
   * calls says how the services call each other: "in-process" (the default: the same
   * handlers, interceptors, tokens and deadlines, without the wire, since they share this
   * process anyway: direct-transport.ts) or "loopback" (the Connect protocol over HTTP/2 to
   * each service's port, as separate tasks call each other: clients.ts). Every service listens
   * on its port either way, for probes.
   */
  calls?: "in-process" | "loopback";
}

/** LocalRegion is a whole region running in this process on embedded backends. */
export interface LocalRegion {
  readonly region: string;
  /** wsUrl is where clients connect. */
  readonly wsUrl: string;
  /** urls are the services' ports; gatewayAdmin is the gateway's operator API, reflection and metrics. */
  readonly urls: {
    gateway: string;
    gatewayAdmin: string;
    messaging: string;
    notification: string;
    persistence: string;
  };
  readonly issuer: DevIssuer;
  readonly gateway: GatewayApp;
  readonly services: RunningService[];
  /** token signs a development token for a user. */
  token(userId: string): Promise<string>;
  /** internalKeys are the key pairs the region's services authenticate each other with. */
  readonly internalKeys: InternalKeySet;
  /**
   * internalToken signs, as `identity` (operator by default: read-only), a token for calling
   * the service `to` directly, acting for `userId` if given.
   */
  internalToken(to: Audience, userId?: string, identity?: Identity): Promise<string>;
  /** stop stops the region gracefully: the gateway drains, everything in flight finishes. */
  stop(): Promise<void>;
  /**
   * kill stops the region as abruptly as one process allows: sockets are cut without a close
   * frame or go_away, ports close at once, nothing drains (a bus handler already running still
   * finishes: work in this process cannot be abandoned; the process runner SIGKILLs instead).
   */
  kill(): Promise<void>;
}

/** EPHEMERAL_PORTS lets the OS pick every port (tests). */
export const EPHEMERAL_PORTS = {
  gateway: 0,
  gatewayAdmin: 0,
  messaging: 0,
  notification: 0,
  persistence: 0,
  issuer: 0,
};

/** DEFAULT_PORTS are the ports of `npm start`. */
export const DEFAULT_PORTS = {
  gateway: 8080,
  gatewayAdmin: 8084,
  messaging: 8081,
  notification: 8082,
  persistence: 8083,
  issuer: 8090,
};

/**
 * startLocalRegion runs gateway, messaging, notification and persistence in this process, each
 * on its own port, sharing in-memory stand-ins for DynamoDB, Redis and Kafka. They call each
 * other in-process by default, or over loopback as separate tasks would (`calls`). A
 * development issuer signs tokens.
 */
export async function startLocalRegion(opts: LocalRegionOptions = {}): Promise<LocalRegion> {
  const env = { ...(opts.env ?? process.env) };
  const ports = opts.ports ?? EPHEMERAL_PORTS;
  // Every service signs its calls with its own key, as separate tasks would.
  const internalKeys = opts.internalKeys ?? generateKeySet("dev");
  const persistenceConfig = loadPersistenceConfig({
    ...env,
    INTERNAL_AUTH_PEERS: internalKeys.peers,
    PORT: String(ports.persistence),
  });
  const region = persistenceConfig.region;
  const host = persistenceConfig.host;
  const logFor = (service: string): Logger =>
    opts.log === "stdout"
      ? createLogger({ service, region, level: persistenceConfig.logLevel })
      : (opts.log?.child({ service }) ?? silentLogger);
  const metricsFor = (service: string) => createMetrics(service, { processMetrics: false });

  // Embedded backends by default; CHAT_STORE, CHAT_BUS and CHAT_REGISTRY work here too.
  const owned = !opts.backends;
  const stores =
    opts.backends?.stores ??
    openStores(persistenceConfig.backends.store, region, persistenceConfig.peers);
  const { store, inbox } = stores;
  const shared = opts.backends?.shared ?? (await openShared(persistenceConfig, logFor("backends")));
  const { bus, registry } = shared;
  const channel = opts.channel ?? shared.channel;
  const peers = parsePeerKeys(internalKeys.peers);
  const signer = (identity: Identity, ttlS?: number) => signerOf(internalKeys, identity, ttlS);
  const keyEnv = (identity: Identity) => ({
    INTERNAL_AUTH_KEY: internalKeys.privateKeys[identity],
    INTERNAL_AUTH_PEERS: internalKeys.peers,
  });
  const operator = signer("operator", OPERATOR_MAX_TTL_S);
  const timeoutMs = persistenceConfig.rpcTimeoutMs;
  const clientsOf = {
    gateway: createServiceClients(timeoutMs, signer("gateway")),
    messaging: createServiceClients(timeoutMs, signer("messaging")),
    notification: createServiceClients(timeoutMs, signer("notification")),
  };
  /** call is a client of a running service, for `caller`, as `opts.calls` says. */
  const call = <S extends DescService>(
    service: S,
    callee: RunningService,
    caller: "gateway" | "messaging" | "notification",
  ): Client<S> =>
    opts.calls === "loopback"
      ? clientsOf[caller].client(service, callee.url)
      : createClient(service, inProcessTransport(callee.app, signer(caller), timeoutMs));
  const issuer = opts.issuer ?? (await startDevIssuer({ host, port: ports.issuer }));
  issuer.trustInternal(region, operator);
  const closeOwned = async () => {
    for (const c of Object.values(clientsOf)) c.close();
    if (owned) {
      await shared.close().catch(() => undefined);
      await stores.close();
    }
    if (!opts.issuer) await issuer.close();
  };
  const running: RunningService[] = [];
  try {
    const persistence = await serveApp(
      buildPersistence({
        store,
        inbox,
        peers,
        log: logFor("persistence"),
        metrics: metricsFor("persistence"),
      }),
      { port: ports.persistence, host },
    );
    running.push(persistence);

    const messagingConfig = loadMessagingConfig({
      ...env,
      ...keyEnv("messaging"),
      PORT: String(ports.messaging),
    });
    const messaging = await serveApp(
      buildMessaging({
        config: messagingConfig,
        persistence: call(PersistenceService, persistence, "messaging"),
        peers,
        bus,
        registry,
        channel,
        log: logFor("messaging"),
        metrics: metricsFor("messaging"),
        hooks: opts.hooks,
      }),
      { port: ports.messaging, host },
    );
    running.push(messaging);

    const notificationConfig = loadNotificationConfig({
      ...env,
      ...keyEnv("notification"),
      PORT: String(ports.notification),
    });
    const notificationLog = logFor("notification");
    const push = opts.push ?? createPushProvider(notificationConfig, notificationLog);
    const notification = await serveApp(
      buildNotification({
        config: {
          pushDelayMs: notificationConfig.push.delayMs,
          maxPushDevicesPerUser: notificationConfig.push.maxDevicesPerUser,
          replayPageSize: notificationConfig.replayPageSize,
        },
        persistence: call(PersistenceService, persistence, "notification"),
        peers,
        bus,
        registry,
        channel,
        push,
        log: notificationLog,
        metrics: metricsFor("notification"),
      }),
      { port: ports.notification, host },
    );
    running.push(notification);

    const gatewayConfig = loadGatewayConfig({
      ...env,
      ...keyEnv("gateway"),
      PORT: String(ports.gateway),
      ADMIN_PORT: String(ports.gatewayAdmin),
      AUTH_JWKS_URL: issuer.jwksUrl,
      AUTH_ISSUER: issuer.issuer,
      AUTH_AUDIENCE: DEV_AUDIENCE,
    });
    const gatewayApp = buildGateway({
      config: gatewayConfig,
      verifier: createJwtVerifier(gatewayConfig.auth),
      operatorVerifier: createJwtVerifier({
        ...gatewayConfig.auth,
        audience: gatewayConfig.admin.operatorAudience,
      }),
      messaging: call(MessagingService, messaging, "gateway"),
      notification: call(NotificationService, notification, "gateway"),
      bus,
      registry,
      channel,
      log: logFor("gateway"),
      metrics: metricsFor("gateway"),
    });
    const gateway = await serveApp(gatewayApp, { port: ports.gateway, host });
    running.push(gateway);

    return {
      region,
      wsUrl: `${gateway.url.replace(/^http/, "ws")}/ws`,
      urls: {
        gateway: gateway.url,
        gatewayAdmin: gateway.adminUrl ?? gateway.url,
        messaging: messaging.url,
        notification: notification.url,
        persistence: persistence.url,
      },
      issuer,
      gateway: gatewayApp,
      services: running,
      token: (userId) => issuer.token(userId),
      internalKeys,
      async internalToken(to, userId, identity = "operator") {
        const by = identity === "operator" ? operator : signer(identity);
        return by.token(to, userId === undefined ? undefined : { userId, deviceId: "" });
      },
      async stop() {
        // Edge first: the gateway drains its clients while the services behind it still answer.
        for (const s of [...running].reverse()) await s.stop();
        await closeOwned();
      },
      async kill() {
        await Promise.all(running.map((s) => s.kill()));
        await closeOwned();
      },
    };
  } catch (err) {
    for (const s of running.reverse()) await s.stop().catch(() => undefined);
    await closeOwned();
    throw err;
  }
}

/** serviceNames lists the gRPC services a local region serves, by port. */
export const SERVICE_NAMES = {
  gateway: GatewayService.typeName,
  messaging: MessagingService.typeName,
  notification: NotificationService.typeName,
  persistence: PersistenceService.typeName,
};
