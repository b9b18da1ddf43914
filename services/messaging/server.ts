import type { Client } from "@connectrpc/connect";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { Fanout } from "../shared/fanout.ts";
import {
  ANY,
  authenticatingInterceptor,
  type CallerPolicy,
  InternalVerifier,
  type PeerKeys,
  READ_ONLY,
} from "../shared/internal-auth.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Bus, Subscription } from "../shared/ports/bus.ts";
import type { DeliveryChannel } from "../shared/ports/delivery-channel.ts";
import type { SessionRegistry } from "../shared/ports/session-registry.ts";
import { createAppHealth, type ServiceApp } from "../shared/service-app.ts";
import { consumeCanary, consumePeerCanaries } from "./consumers/canary.ts";
import { consumeRemoteInboxAppended } from "./consumers/inbox-appended.ts";
import { consumeMessageStored } from "./consumers/message-stored.ts";
import { consumeRemotePresenceChanged } from "./consumers/presence-changed.ts";
import { consumeRemotePresenceLease } from "./consumers/presence-lease.ts";
import { consumeReceiptUpdated } from "./consumers/receipt-updated.ts";
import { consumeTyping } from "./consumers/typing.ts";
import { MessagingHandler, type MessagingHooks } from "./handler.ts";
import { InboxDelivery } from "./inbox-delivery.ts";
import { PeerLiveness } from "./peer-liveness.ts";
import { Router } from "./router.ts";
import { Sweeper } from "./sweeper.ts";
import { Takeover } from "./takeover.ts";

/** MessagingAppDeps are everything the messaging service is built from. */
export interface MessagingAppDeps {
  config: {
    region: string;
    peers: readonly string[];
    mirrors: readonly string[];
    maxGroupSize: number;
    sweepIntervalMs: number;
    sweepMinAgeMs: number;
    sweepMaxAgeMs: number;
    receiptWindowMs: number;
    /** conversationChangesPerMinute limits each user's creations and membership changes. */
    conversationChangesPerMinute?: number;
    replicationWaitMs?: number;
    /** instanceId names this task (its own view of the peers' liveness). */
    instanceId?: string;
    /** takeover tunes delivering a dead peer's backlog (takeover.ts); unset: never. */
    takeover?: { afterMs: number; windowMs: number; intervalMs: number };
  };
  persistence: Client<typeof PersistenceService>;
  bus: Bus;
  registry: SessionRegistry;
  channel: DeliveryChannel;
  /** peers are the public keys of the services that may call messaging. */
  peers: PeerKeys;
  log: Logger;
  metrics: Metrics;
  hooks?: MessagingHooks;
}

/**
 * CALLERS: the gateway acts for its clients' users (in the token, or per item of a batch);
 * operators' tools may read, as the user their token names.
 */
export const MESSAGING_CALLERS: CallerPolicy = { gateway: ANY, operator: READ_ONLY };

/** build wires the messaging service; it does not listen (see main.ts). */
export function build(deps: MessagingAppDeps): ServiceApp {
  const { config, bus, log, metrics } = deps;
  const fanout = new Fanout(deps.registry, deps.channel);
  const handler = new MessagingHandler({
    region: config.region,
    peers: config.peers,
    persistence: deps.persistence,
    bus,
    registry: deps.registry,
    maxGroupSize: config.maxGroupSize,
    replicationWaitMs: config.replicationWaitMs,
    conversationChangesPerMinute: config.conversationChangesPerMinute,
    hooks: deps.hooks,
  });
  const peers = config.peers;
  const takeover = peers.length > 0 ? config.takeover : undefined;
  const router = new Router({
    region: config.region,
    persistence: deps.persistence,
    bus,
    fanout,
    hooks: deps.hooks,
  });
  const liveness = new PeerLiveness(peers, { deadAfterMs: takeover?.afterMs ?? 10_000 });
  const takeoverLoop =
    takeover &&
    new Takeover({
      region: config.region,
      persistence: deps.persistence,
      inboxes: new InboxDelivery({ persistence: deps.persistence, bus, fanout }),
      liveness,
      log,
      intervalMs: takeover.intervalMs,
      windowMs: takeover.windowMs,
    });
  const sweeper = new Sweeper({
    persistence: deps.persistence,
    bus,
    log,
    intervalMs: config.sweepIntervalMs,
    minAgeMs: config.sweepMinAgeMs,
    maxAgeMs: config.sweepMaxAgeMs,
  });
  const subscriptions: Subscription[] = [];
  return {
    name: "messaging",
    services: [MessagingService],
    log,
    metrics,
    health: createAppHealth([MessagingService]),
    interceptors: [
      authenticatingInterceptor(new InternalVerifier("messaging", deps.peers), MESSAGING_CALLERS),
    ],
    routes: (r) => r.service(MessagingService, handler),
    async start() {
      const mirrors = config.mirrors;
      const registry = deps.registry;
      // Consumers join their groups together: one after the other, each join waits for the
      // group's rebalance, and a restarted task would take a minute to serve.
      const joining = [
        consumeMessageStored({ bus, router, log, metrics }),
        consumeCanary({ bus, persistence: deps.persistence, fanout, log, metrics }),
        consumeTyping({ bus, mirrors, fanout, log, metrics }),
        consumeReceiptUpdated({
          bus,
          mirrors,
          fanout,
          log,
          metrics,
          windowMs: config.receiptWindowMs,
        }),
        ...(mirrors.length > 0
          ? [
              consumeRemoteInboxAppended({ bus, mirrors, fanout, log, metrics }),
              consumeRemotePresenceChanged({ bus, mirrors, registry, log, metrics }),
              consumeRemotePresenceLease({ bus, mirrors, registry, log, metrics }),
              consumePeerCanaries({
                bus,
                mirrors,
                liveness,
                instanceId: config.instanceId ?? "messaging",
                log,
                metrics,
              }),
            ]
          : []),
      ];
      const joined = await Promise.allSettled(joining);
      for (const j of joined) if (j.status === "fulfilled") subscriptions.push(j.value);
      const failed = joined.find((j) => j.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
      sweeper.start();
      takeoverLoop?.start();
    },
    async stop() {
      await takeoverLoop?.stop();
      await sweeper.stop();
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
    },
  };
}
