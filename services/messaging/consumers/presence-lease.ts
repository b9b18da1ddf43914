import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import type { SessionRegistry } from "../../shared/ports/session-registry.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import { DEFAULT_TTL_MS } from "./presence-changed.ts";

/**
 * consumeRemotePresenceLease renews, in this region's registry, the presence of the users that
 * other regions' gateway instances report connected. A region that dies stops renewing, and
 * its users go offline here when their leases run out.
 */
export function consumeRemotePresenceLease(deps: {
  bus: Bus;
  mirrors: readonly string[];
  registry: Pick<SessionRegistry, "setRemotePresence">;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.presenceLease,
    mirrors: deps.mirrors,
    sources: "peers",
    groupId: "messaging-remote-presence-lease",
    // An old lease says nothing about now: a restarted consumer waits for the next ones.
    fromBeginning: false,
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      for (const { value: e } of events) {
        if (e.region === "") continue;
        await deps.registry.setRemotePresence(
          e.region,
          e.userIds.map((userId) => ({ userId, online: true })),
          e.ttlMs || DEFAULT_TTL_MS,
        );
      }
    },
  });
}
