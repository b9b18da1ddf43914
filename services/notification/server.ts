import type { Client } from "@connectrpc/connect";
import { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { Fanout } from "../shared/fanout.ts";
import {
  ANY,
  authenticatingInterceptor,
  type CallerPolicy,
  InternalVerifier,
  type PeerKeys,
} from "../shared/internal-auth.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Bus, Subscription } from "../shared/ports/bus.ts";
import type { DeliveryChannel } from "../shared/ports/delivery-channel.ts";
import type { SessionRegistry } from "../shared/ports/session-registry.ts";
import { createAppHealth, type ServiceApp } from "../shared/service-app.ts";
import { consumeInboxAppended } from "./consumers/inbox-appended.ts";
import { consumeUserConnected } from "./consumers/user-connected.ts";
import { NotificationHandler } from "./handler.ts";
import type { PushProvider } from "./push/push-provider.ts";
import { PushScheduler } from "./push-scheduler.ts";
import { Replayer } from "./replayer.ts";

/** NotificationAppDeps are everything the notification service is built from. */
export interface NotificationAppDeps {
  config: { pushDelayMs: number; replayPageSize: number; maxPushDevicesPerUser?: number };
  persistence: Client<typeof PersistenceService>;
  bus: Bus;
  registry: SessionRegistry;
  channel: DeliveryChannel;
  push: PushProvider;
  /** peers are the public keys of the services that may call notification. */
  peers: PeerKeys;
  log: Logger;
  metrics: Metrics;
}

/** CALLERS: only the gateway, for its clients' devices. */
export const NOTIFICATION_CALLERS: CallerPolicy = { gateway: ANY };

/** build wires the notification service; it does not listen (see main.ts). */
export function build(deps: NotificationAppDeps): ServiceApp {
  const { bus, log, metrics } = deps;
  const replayer = new Replayer(
    deps.persistence,
    new Fanout(deps.registry, deps.channel),
    deps.config.replayPageSize,
  );
  const scheduler = new PushScheduler({
    persistence: deps.persistence,
    provider: deps.push,
    log,
    delayMs: deps.config.pushDelayMs,
    maxDevicesPerUser: deps.config.maxPushDevicesPerUser,
  });
  const handler = new NotificationHandler(deps.persistence, replayer, {
    maxDevicesPerUser: deps.config.maxPushDevicesPerUser,
  });
  const subscriptions: Subscription[] = [];
  return {
    name: "notification",
    services: [NotificationService],
    log,
    metrics,
    health: createAppHealth([NotificationService]),
    interceptors: [
      authenticatingInterceptor(
        new InternalVerifier("notification", deps.peers),
        NOTIFICATION_CALLERS,
      ),
    ],
    routes: (r) => r.service(NotificationService, handler),
    async start() {
      subscriptions.push(
        await consumeUserConnected({ bus, replayer, log, metrics }),
        await consumeInboxAppended({ bus, scheduler, log, metrics }),
      );
    },
    async stop() {
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
    },
  };
}
