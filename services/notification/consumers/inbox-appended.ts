import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import { type PushScheduler, RETRY_GRANULARITY_MS } from "../push-scheduler.ts";

/**
 * consumeInboxAppended feeds this region's inbox appends to the push scheduler. Only the origin
 * region pushes for a message, so a user is never notified twice for one message.
 */
export function consumeInboxAppended(deps: {
  bus: Bus;
  scheduler: PushScheduler;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.inboxAppended,
    sources: "local",
    groupId: "notification-push",
    log: deps.log,
    metrics: deps.metrics,
    // Appends wait on the bus, undecoded, until they are due.
    dueAtMs: (record) => deps.scheduler.dueAtMs(record.timestampMs),
    holdGranularityMs: RETRY_GRANULARITY_MS,
    handler: async (events) => {
      await deps.scheduler.handle(
        events.map((e) => ({ event: e.value, appendedAtMs: e.record.timestampMs })),
      );
    },
  });
}
