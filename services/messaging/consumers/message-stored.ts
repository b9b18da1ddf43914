import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import type { Router } from "../router.ts";

/** consumeMessageStored routes this region's stored messages (routing runs in the origin only). */
export function consumeMessageStored(deps: {
  bus: Bus;
  router: Router;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.messageStored,
    sources: "local",
    groupId: "messaging-routing",
    log: deps.log,
    metrics: deps.metrics,
    handler: (events) =>
      deps.router.route(
        events.map((e) => e.value),
        events.map((e) => e.trace),
      ),
  });
}
