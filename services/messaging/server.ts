import type { Client } from "@connectrpc/connect";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import type { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { Fanout } from "../shared/fanout.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { Bus, Subscription } from "../shared/ports/bus.ts";
import type { DeliveryChannel } from "../shared/ports/delivery-channel.ts";
import type { SessionRegistry } from "../shared/ports/session-registry.ts";
import { createAppHealth, type ServiceApp } from "../shared/service-app.ts";
import { consumeRemoteInboxAppended } from "./consumers/inbox-appended.ts";
import { consumeMessageStored } from "./consumers/message-stored.ts";
import { consumeReceiptUpdated } from "./consumers/receipt-updated.ts";
import { consumeTyping } from "./consumers/typing.ts";
import { MessagingHandler, type MessagingHooks } from "./handler.ts";
import { Router } from "./router.ts";
import { Sweeper } from "./sweeper.ts";

/** MessagingAppDeps are everything the messaging service is built from. */
export interface MessagingAppDeps {
  config: {
    region: string;
    mirrors: readonly string[];
    maxGroupSize: number;
    sweepIntervalMs: number;
    sweepMinAgeMs: number;
    sweepMaxAgeMs: number;
    receiptWindowMs: number;
  };
  persistence: Client<typeof PersistenceService>;
  bus: Bus;
  registry: SessionRegistry;
  channel: DeliveryChannel;
  log: Logger;
  metrics: Metrics;
  hooks?: MessagingHooks;
}

/** build wires the messaging service; it does not listen (see main.ts). */
export function build(deps: MessagingAppDeps): ServiceApp {
  const { config, bus, log, metrics } = deps;
  const fanout = new Fanout(deps.registry, deps.channel);
  const handler = new MessagingHandler({
    region: config.region,
    persistence: deps.persistence,
    bus,
    registry: deps.registry,
    maxGroupSize: config.maxGroupSize,
    hooks: deps.hooks,
  });
  const router = new Router({ region: config.region, persistence: deps.persistence, bus, fanout });
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
    routes: (r) => r.service(MessagingService, handler),
    async start() {
      const mirrors = config.mirrors;
      subscriptions.push(
        await consumeMessageStored({ bus, router, log, metrics }),
        await consumeTyping({ bus, mirrors, fanout, log, metrics }),
        await consumeReceiptUpdated({
          bus,
          mirrors,
          fanout,
          log,
          metrics,
          windowMs: config.receiptWindowMs,
        }),
      );
      if (mirrors.length > 0) {
        subscriptions.push(
          await consumeRemoteInboxAppended({ bus, mirrors, fanout, log, metrics }),
        );
      }
      sweeper.start();
    },
    async stop() {
      await sweeper.stop();
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
    },
  };
}
