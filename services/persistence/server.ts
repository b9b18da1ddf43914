import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { createHybridClock, type HybridClock } from "../shared/hlc.ts";
import type { Logger } from "../shared/logger.ts";
import type { Metrics } from "../shared/metrics.ts";
import type { ChatStore } from "../shared/ports/chat-store.ts";
import type { InboxStore } from "../shared/ports/inbox-store.ts";
import { createAppHealth, type ServiceApp } from "../shared/service-app.ts";
import { PersistenceHandler } from "./handler.ts";

/** PersistenceAppDeps are everything the persistence service is built from. */
export interface PersistenceAppDeps {
  store: ChatStore;
  inbox: InboxStore;
  log: Logger;
  metrics: Metrics;
  clock?: HybridClock;
  now?: () => number;
}

/** build wires the persistence service; it does not listen (see main.ts). */
export function build(deps: PersistenceAppDeps): ServiceApp {
  const handler = new PersistenceHandler({
    store: deps.store,
    inbox: deps.inbox,
    clock: deps.clock ?? createHybridClock(),
    now: deps.now ?? Date.now,
  });
  return {
    name: "persistence",
    services: [PersistenceService],
    log: deps.log,
    metrics: deps.metrics,
    health: createAppHealth([PersistenceService]),
    routes: (router) => router.service(PersistenceService, handler),
    start: async () => {},
    stop: async () => {},
  };
}
