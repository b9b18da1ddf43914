import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import type { Replayer } from "../replayer.ts";

const PARALLEL_REPLAYS = 16;

/** consumeUserConnected replays inboxes to connecting (or resyncing) devices. */
export function consumeUserConnected(deps: {
  bus: Bus;
  replayer: Replayer;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.userConnected,
    groupId: "notification-replay",
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      const queue = events.map((e) => e.value);
      const worker = async () => {
        for (let ev = queue.shift(); ev; ev = queue.shift()) {
          await deps.replayer.replay(
            { userId: ev.userId, sessionId: ev.sessionId, instanceId: ev.instanceId },
            ev.inbox,
            ev.requestId,
          );
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL_REPLAYS, queue.length) }, worker));
    },
  });
}
