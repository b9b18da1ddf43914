import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";

/**
 * consumePresenceLease reads the presence leases of every region (this one included), each
 * gateway instance in its own group, so that watchers see the users of a gateway or a region
 * that died go offline when their leases run out.
 */
export function consumePresenceLease(deps: {
  bus: Bus;
  mirrors: readonly string[];
  instanceId: string;
  onLease: (region: string, userIds: readonly string[], ttlMs: number) => void;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.presenceLease,
    mirrors: deps.mirrors,
    groupId: `gateway-presence-lease-${deps.instanceId}`,
    fromBeginning: false,
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      for (const { value } of events) deps.onLease(value.region, value.userIds, value.ttlMs);
    },
  });
}
