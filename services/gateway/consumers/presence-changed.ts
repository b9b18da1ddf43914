import type { Presence } from "../../../gen/chat/v1/types_pb.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";

/**
 * consumePresenceChanged reads presence changes from every region. Every gateway instance
 * reads all of them (its own consumer group): presence changes are rare next to messages, and
 * it keeps the watch lists local to the instance that holds the sockets.
 */
export function consumePresenceChanged(deps: {
  bus: Bus;
  mirrors: readonly string[];
  instanceId: string;
  onChange: (presence: Presence, region: string, ttlMs: number) => void;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.presenceChanged,
    mirrors: deps.mirrors,
    groupId: `gateway-presence-${deps.instanceId}`,
    fromBeginning: false,
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      for (const { value } of events)
        if (value.presence) deps.onChange(value.presence, value.region, value.ttlMs);
    },
  });
}
