import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { createHybridClock, type HybridClock } from "../shared/hlc.ts";
import {
  authenticatingInterceptor,
  type CallerPolicy,
  InternalVerifier,
  only,
  type PeerKeys,
  READ_ONLY,
} from "../shared/internal-auth.ts";
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
  /** peers are the public keys of the services that may call persistence. */
  peers: PeerKeys;
  log: Logger;
  metrics: Metrics;
  clock?: HybridClock;
  now?: () => number;
}

/**
 * CALLERS: persistence holds everything, so each caller gets only what it needs. Messaging
 * writes and reads the chat; notification reads inboxes and receipts and keeps push tokens;
 * operators' tools read. The gateway, the one service facing the internet, has no key here.
 */
export const PERSISTENCE_CALLERS: CallerPolicy = {
  messaging: (method) => !/PushToken|ClaimPush/.test(method),
  notification: only(
    "ReadInbox",
    "BatchReadReceipts",
    "ClaimPush",
    "SavePushToken",
    "DeletePushToken",
    "ListPushTokens",
  ),
  operator: READ_ONLY,
};

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
    interceptors: [
      authenticatingInterceptor(
        new InternalVerifier("persistence", deps.peers),
        PERSISTENCE_CALLERS,
      ),
    ],
    routes: (router) => router.service(PersistenceService, handler),
    start: async () => {},
    stop: async () => {},
  };
}
