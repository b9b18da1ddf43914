import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import type { SessionRegistry } from "../../shared/ports/session-registry.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";

/**
 * consumeRemotePresenceChanged records in this region's registry which users other regions
 * report coming online and going offline, so that presence snapshots taken here are right for
 * users connected only elsewhere.
 */
export function consumeRemotePresenceChanged(deps: {
  bus: Bus;
  mirrors: readonly string[];
  registry: Pick<SessionRegistry, "setRemotePresence">;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.presenceChanged,
    mirrors: deps.mirrors,
    sources: "peers",
    groupId: "messaging-remote-presence",
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      for (const { value: e } of events) {
        if (!e.presence || e.region === "") continue;
        await deps.registry.setRemotePresence(
          e.region,
          [{ userId: e.presence.userId, online: e.presence.online }],
          e.ttlMs || DEFAULT_TTL_MS,
        );
      }
    },
  });
}

/** DEFAULT_TTL_MS is the lease of an online user whose event names none (older gateways). */
export const DEFAULT_TTL_MS = 60_000;
