import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import type { Context } from "@opentelemetry/api";
import { WebSocketServer } from "ws";
import { GatewayDeliverySchema } from "../../gen/chat/v1/events_pb.ts";
import { GatewayService } from "../../gen/chat/v1/gateway_pb.ts";
import {
  type BatchDeliveredItemSchema,
  type BatchSendItemSchema,
  type MessagingService,
  OutcomeSchema,
} from "../../gen/chat/v1/messaging_pb.ts";
import type { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import { Batcher } from "../shared/batcher.ts";
import { createHybridClock } from "../shared/hlc.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Bus, Subscription } from "../shared/ports/bus.ts";
import type { DeliveryChannel } from "../shared/ports/delivery-channel.ts";
import type { SessionRegistry } from "../shared/ports/session-registry.ts";
import { createAppHealth, type ServiceApp } from "../shared/service-app.ts";
import { publishEvents, TOPICS } from "../shared/topics.ts";
import { contextFrom, openSpan, SpanKind } from "../shared/tracing.ts";
import { AckRetry } from "./ack-retry.ts";
import type { TokenVerifier } from "./auth.ts";
import { DeliveryCanary } from "./canary.ts";
import { startCloudWatchMetrics } from "./cloudwatch-metrics.ts";
import { JSON_SUBPROTOCOL, PROTO_SUBPROTOCOL, warmFrameValidation } from "./codec.ts";
import { Connection, type ConnectionHost } from "./connection.ts";
import { consumePresenceChanged } from "./consumers/presence-changed.ts";
import { consumePresenceLease } from "./consumers/presence-lease.ts";
import { watchEcsStop } from "./ecs-stop-watch.ts";
import { GatewayHandler } from "./handler.ts";
import { operatorAuth } from "./operator-auth.ts";
import { PresenceWatch } from "./presence-watch.ts";
import type { LiveFrame } from "./replay-gate.ts";

/** WS_PATH is where clients open their WebSocket. */
export const WS_PATH = "/ws";

/** GatewayAppDeps are everything a gateway instance is built from. */
export interface GatewayAppDeps {
  config: {
    region: string;
    mirrors: readonly string[];
    instanceId: string;
    heartbeatIntervalMs: number;
    sessionTtlMs: number;
    maxFrameBytes: number;
    framesPerSecond: number;
    /** The per-connection and per-user limits: see ConnectionHost and admit below. */
    maxBufferedBytes: number;
    maxRequestsInFlight: number;
    maxPageRequestsInFlight: number;
    maxHistoryPageBytes: number;
    maxConnectionsPerUser: number;
    /** ackLingerMs: how long acks gather before they leave together (GatewayConfig). */
    ackLingerMs?: number;
    drainMs: number;
    /** canaryIntervalMs and canaryTimeoutMs tune the delivery canary (canary.ts). */
    canaryIntervalMs: number;
    canaryTimeoutMs: number;
    ecsMetadataUri?: string;
    /** cloudwatchMetrics writes connections and lost canaries as CloudWatch metrics (30 s). */
    cloudwatchMetrics?: boolean;
    /** admin.port is the internal listener of the operator API, reflection and metrics. */
    admin: { port: number };
  };
  verifier: TokenVerifier;
  /** operatorVerifier checks the tokens of the operator API (audience AUTH_OPERATOR_AUDIENCE). */
  operatorVerifier: TokenVerifier;
  messaging: Client<typeof MessagingService>;
  notification: Client<typeof NotificationService>;
  bus: Bus;
  registry: SessionRegistry;
  channel: DeliveryChannel;
  log: Logger;
  metrics: Metrics;
}

/** GatewayApp is a gateway instance: a ServiceApp plus what tests and operators look at. */
export interface GatewayApp extends ServiceApp {
  /** connectionCount is the number of open authenticated sockets. */
  connectionCount(): number;
  /** drain tells every client to reconnect elsewhere, finishing requests in flight. */
  drain(): Promise<void>;
}

/**
 * build wires a gateway instance: WebSocket upgrades on WS_PATH, the per-instance delivery
 * channel, the session registry, presence, heartbeats and graceful drain. It does not listen.
 */
export function build(deps: GatewayAppDeps): GatewayApp {
  const { config, log, metrics, registry } = deps;
  const connections = new Map<string, Connection>();
  const byUser = new Map<string, Set<Connection>>();
  const presence = new PresenceWatch();
  const subscriptions: Subscription[] = [];
  const timers: NodeJS.Timeout[] = [];
  let stopListening: (() => Promise<void>) | undefined;
  let stopReconnect: (() => void) | undefined;
  let stopWatching: (() => void) | undefined;
  let stopMetrics: (() => void) | undefined;
  let draining = false;
  /** killed: a crash leaves its sessions registered (they expire) and says nothing to anyone. */
  let killed = false;
  const health = createAppHealth([GatewayService]);
  const canary = new DeliveryCanary({
    region: config.region,
    instanceId: config.instanceId,
    intervalMs: config.canaryIntervalMs,
    timeoutMs: config.canaryTimeoutMs,
    bus: deps.bus,
    health,
    log,
    onChange: (delivering) => {
      if (!delivering) void evacuate();
    },
  });

  // Sends and acks of every connection leave in shared batches: one RPC carries many.
  const sends = new Batcher({
    name: "send",
    maxBatch: 500,
    maxInflight: 2,
    run: async (items: MessageInitShape<typeof BatchSendItemSchema>[]) =>
      (await deps.messaging.batchSendMessages({ items })).outcomes,
  });
  const batchMarkDelivered = async (items: MessageInitShape<typeof BatchDeliveredItemSchema>[]) =>
    (await deps.messaging.batchMarkDelivered({ items })).outcomes;
  const acks = new Batcher({
    name: "ack",
    maxBatch: 500,
    maxInflight: 1,
    lingerMs: config.ackLingerMs ?? 0,
    run: batchMarkDelivered,
  });

  const ackRetry = new AckRetry({ send: batchMarkDelivered, log });

  const host: ConnectionHost = {
    instanceId: config.instanceId,
    region: config.region,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    sessionTtlMs: config.sessionTtlMs,
    maxFrameBytes: config.maxFrameBytes,
    framesPerSecond: config.framesPerSecond,
    maxBufferedBytes: config.maxBufferedBytes,
    maxRequestsInFlight: config.maxRequestsInFlight,
    maxPageRequestsInFlight: config.maxPageRequestsInFlight,
    maxHistoryPageBytes: config.maxHistoryPageBytes,
    verifier: deps.verifier,
    messaging: deps.messaging,
    notification: deps.notification,
    sendMessage: (actor, draft) => sends.add({ actor, draft }),
    // An ack that fails for a reason that may pass is taken (the client is answered ok) and
    // sent again by ackRetry: the client would not send the same position again by itself.
    markDelivered: async (actor, conversations) => {
      try {
        const outcome = await acks.add({ actor, conversations });
        const error = outcome.error;
        if (error && AckRetry.retryableCode(error.code as number)) {
          ackRetry.hold(actor, conversations);
          return create(OutcomeSchema);
        }
        return outcome;
      } catch (err) {
        if (!AckRetry.retryable(err)) throw err;
        ackRetry.hold(actor, conversations);
        return create(OutcomeSchema);
      }
    },
    bus: deps.bus,
    clock: createHybridClock(),
    log,
    async opened(conn) {
      const refused = await admit(conn);
      if (refused !== undefined) return { refused };
      // Nothing awaited since admit counted: no other connection of the user got in between.
      connections.set(conn.sessionId, conn);
      let set = byUser.get(conn.userId);
      if (!set) {
        set = new Set();
        byUser.set(conn.userId, set);
      }
      set.add(conn);
      return registry.register(conn.session, config.sessionTtlMs);
    },
    closed(conn) {
      if (killed || connections.get(conn.sessionId) !== conn) return;
      connections.delete(conn.sessionId);
      const set = byUser.get(conn.userId);
      set?.delete(conn);
      if (set?.size === 0) byUser.delete(conn.userId);
      presence.unwatch(conn);
      registry
        .unregister(conn.session)
        .then(({ lastOfUser }) => (lastOfUser ? conn.offline() : undefined))
        .catch((err) => log.warn({ err, session: conn.sessionId }, "could not unregister session"));
    },
    watch(conn, users) {
      presence.watch(conn, users, config.sessionTtlMs);
    },
  };

  /**
   * admit says why a user's new connection is refused, or undefined when it may open. A user
   * may hold maxConnectionsPerUser connections in the region: those on this instance, counted
   * exactly, and those the session registry knows on other instances. The registry's count is
   * approximate (two instances may admit at the same moment, and a crashed instance's sessions
   * linger until they expire), so it leaves out the connecting device's own sessions there: a
   * device is not refused for its old connection on an instance that crashed, or that has not
   * noticed yet that the connection died. A registry that cannot answer leaves the count to
   * this instance's.
   */
  async function admit(conn: Connection): Promise<string | undefined> {
    const cap = config.maxConnectionsPerUser;
    let elsewhere = 0;
    try {
      const sessions = (await registry.lookup([conn.userId])).get(conn.userId) ?? [];
      elsewhere = sessions.filter(
        (s) => s.instanceId !== config.instanceId && s.deviceId !== conn.deviceId,
      ).length;
    } catch (err) {
      log.warn(
        { err, user: conn.userId },
        "session registry lookup failed: capping on this instance",
      );
    }
    if (!conn.isOpen) return "the connection closed";
    const open = (byUser.get(conn.userId)?.size ?? 0) + elsewhere;
    if (open < cap) return undefined;
    return `too many connections: this user has ${open} open, at most ${cap}; close one, then retry`;
  }

  function onDelivery(payload: Uint8Array) {
    let delivery: ReturnType<typeof fromBinary<typeof GatewayDeliverySchema>>;
    try {
      delivery = fromBinary(GatewayDeliverySchema, payload);
    } catch (err) {
      log.warn({ err }, "dropping undecodable delivery");
      return;
    }
    if (delivery.canaryNonce !== 0n) canary.returned(delivery.canaryNonce);
    // Traced, each frame written to a socket is a span continuing the trace of the routing
    // that sent it (deliveries that carry none, such as canaries, make no spans).
    const parent = delivery.traceContext.traceparent
      ? contextFrom(delivery.traceContext)
      : undefined;
    const deliver = parent ? tracedDelivery(parent) : plainDelivery;
    for (const item of delivery.items) {
      // One frame for every connection it goes to: each encoding and decoding is done once.
      const frame: LiveFrame = { bytes: item.serverFrame };
      if (item.sessionId !== "") {
        // Addressed to one session: its replay (or sync) stream.
        const conn = connections.get(item.sessionId);
        if (conn && conn.userId === item.userId && conn.isOpen) deliver(conn, frame, true);
        continue;
      }
      const except = item.exceptDeviceId;
      for (const conn of byUser.get(item.userId) ?? []) {
        if (conn.isOpen && (except === "" || conn.deviceId !== except)) deliver(conn, frame, false);
      }
    }
  }

  function plainDelivery(conn: Connection, frame: LiveFrame, replay: boolean) {
    conn.deliver(frame, replay);
  }

  function tracedDelivery(parent: Context) {
    return (conn: Connection, frame: LiveFrame, replay: boolean) => {
      const span = openSpan("deliver", {
        kind: SpanKind.CONSUMER,
        parent,
        service: "gateway",
        attributes: {
          "chat.user_id": conn.userId,
          "chat.device_id": conn.deviceId,
          "chat.session_id": conn.sessionId,
          "chat.replay": replay,
        },
      });
      try {
        conn.deliver(frame, replay);
      } finally {
        span?.end();
      }
    };
  }

  const wss = new WebSocketServer({
    noServer: true,
    // Frames above maxFrameBytes are answered with an error frame; only frames far beyond it
    // close the connection (1009), so memory per connection stays bounded.
    maxPayload: config.maxFrameBytes * 4,
    perMessageDeflate: false,
    handleProtocols: (protocols) => {
      if (protocols.has(PROTO_SUBPROTOCOL)) return PROTO_SUBPROTOCOL;
      if (protocols.has(JSON_SUBPROTOCOL)) return JSON_SUBPROTOCOL;
      return false;
    },
  });

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
    const path = (req.url ?? "/").split("?")[0];
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if (path !== WS_PATH) return refuse("404 Not Found");
    if (draining || !canary.delivering) return refuse("503 Service Unavailable");
    const offered = req.headers["sec-websocket-protocol"];
    if (
      offered &&
      !offered.split(",").some((p) => [PROTO_SUBPROTOCOL, JSON_SUBPROTOCOL].includes(p.trim()))
    ) {
      return refuse("400 Bad Request");
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const encoding = ws.protocol === JSON_SUBPROTOCOL ? "json" : "proto";
      new Connection(ws, encoding, host);
    });
  }

  async function shutdown() {
    canary.stop();
    ackRetry.close();
    stopReconnect?.();
    for (const t of timers.splice(0)) clearInterval(t);
    await Promise.all(subscriptions.splice(0).map((s) => s.close()));
    await stopListening?.();
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  }

  /**
   * evacuate sends every client to another region when this one cannot deliver (the canary
   * failed): go_away with leave_region, spread over a few seconds so the other region is not
   * hit by every reconnect at once. New connections are refused until the canary is back.
   */
  async function evacuate() {
    const all = [...connections.values()];
    log.warn({ connections: all.length }, "sending every client to another region");
    await Promise.all(all.map((c) => c.drain(1_000, Math.floor(Math.random() * 3_000), true)));
  }

  async function drain() {
    if (draining) return;
    draining = true;
    health.setServing(false);
    const all = [...connections.values()];
    // Spread reconnects over the first part of the drain window, so clients do not all
    // arrive at the remaining instances in the same instant.
    const spread = Math.min(5_000, config.drainMs / 4);
    await Promise.all(
      all.map((c) => c.drain(config.drainMs / 2, Math.floor(Math.random() * spread))),
    );
  }

  return {
    name: "gateway",
    services: [GatewayService],
    log,
    metrics,
    health,
    routes: (r) => r.service(GatewayService, new GatewayHandler((u) => byUser.get(u) ?? [])),
    // The public port carries /ws and /healthz only; the operator API, reflection and metrics
    // are on the admin listener, and the operator API wants an operator token there too.
    admin: { port: config.admin.port, interceptors: [operatorAuth(deps.operatorVerifier, log)] },
    upgrade,
    connectionCount: () => connections.size,
    drain,
    async start() {
      warmFrameValidation();
      stopListening = await deps.channel.listen(config.instanceId, onDelivery);
      const presenceDeps = {
        bus: deps.bus,
        mirrors: config.mirrors,
        instanceId: config.instanceId,
        log,
        metrics,
      };
      subscriptions.push(
        await consumePresenceChanged({
          ...presenceDeps,
          onChange: (p, region, ttlMs) => presence.changed(p, region, ttlMs || config.sessionTtlMs),
        }),
        await consumePresenceLease({
          ...presenceDeps,
          onLease: (region, userIds, ttlMs) =>
            presence.leased(region, userIds, ttlMs || config.sessionTtlMs),
        }),
      );
      // Every third of the TTL: renew this instance's sessions and lease its users' presence.
      const refresh = async () => {
        const open = [...connections.values()].filter((c) => c.isOpen);
        await registry
          .refresh(
            config.instanceId,
            open.map((c) => c.session),
            config.sessionTtlMs,
          )
          .catch((err) => log.warn({ err }, "session refresh failed"));
        await publishEvents(deps.bus, TOPICS.presenceLease, [
          {
            key: config.instanceId,
            value: {
              region: config.region,
              instanceId: config.instanceId,
              userIds: [...new Set(open.map((c) => c.userId))],
              ttlMs: config.sessionTtlMs,
            },
          },
        ]).catch((err) => log.warn({ err }, "presence lease failed"));
      };
      await refresh();
      timers.push(setInterval(refresh, Math.max(1_000, config.sessionTtlMs / 3)));
      // A registry that comes back may have lost every session: without this, deliveries to
      // devices connected all along would find nobody until the next refresh.
      stopReconnect = registry.onReconnect(() => {
        log.info("session registry reconnected: registering this gateway's sessions again");
        void refresh();
      });
      canary.start();
      if (config.cloudwatchMetrics) {
        let lostBefore = canary.lost;
        stopMetrics = startCloudWatchMetrics({
          env: config.region,
          read: () => {
            const failures = canary.lost - lostBefore;
            lostBefore = canary.lost;
            return { connections: connections.size, canaryFailures: failures };
          },
        });
      }
      timers.push(
        setInterval(
          () => presence.expire(),
          Math.max(250, Math.min(5_000, config.sessionTtlMs / 4)),
        ),
      );
      if (config.ecsMetadataUri) {
        stopWatching = watchEcsStop({
          metadataUri: config.ecsMetadataUri,
          intervalMs: 2_000,
          onStopping: () => {
            log.info("ECS is stopping this task: draining");
            void drain();
          },
          onError: (err) => log.debug({ err }, "ECS task metadata unavailable"),
        });
      }
      timers.push(
        setInterval(() => {
          const deadline = Date.now() - 3 * config.heartbeatIntervalMs;
          for (const c of connections.values()) if (c.lastFrameAtMs < deadline) c.terminate();
        }, config.heartbeatIntervalMs),
      );
    },
    async stop() {
      stopWatching?.();
      stopMetrics?.();
      await drain();
      await shutdown();
    },
    async kill() {
      stopWatching?.();
      stopMetrics?.();
      draining = true;
      killed = true;
      for (const ws of wss.clients) ws.terminate();
      await shutdown();
    },
  };
}
