import { Gauge } from "prom-client";
import type { Health } from "./health.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import type { Bus } from "./ports/bus.ts";

/** CONSUMERS_CHECK is the health check that holds while no bus consumer is down. */
export const CONSUMERS_CHECK = "bus-consumers";

/**
 * watchConsumers makes the bus consumers of a process visible: health fails (check
 * "bus-consumers") while a consumer that crashed is being started again, so a process whose
 * consumer keeps failing is taken out of service and replaced (ECS restarts a task that stays
 * unhealthy), and /metrics shows how many partitions each consumer holds and how often it was
 * restarted. A consumer waiting for its group is not a failure: during a broker outage every
 * consumer waits, and replacing tasks would not bring the broker back.
 */
export function watchConsumers(opts: {
  bus: Bus;
  health: Health;
  metrics: Metrics;
  log: Logger;
  intervalMs?: number;
}): () => void {
  const { bus, health, log } = opts;
  new Gauge({
    name: "chat_bus_consumer_partitions",
    help: "Partitions each bus consumer holds now, by consumer group and state.",
    labelNames: ["group", "state"],
    registers: [opts.metrics.registry],
    collect() {
      this.reset();
      for (const c of bus.consumers()) {
        const held = Object.values(c.partitions).reduce((n, ps) => n + ps.length, 0);
        this.inc({ group: c.groupId, state: c.state }, held);
      }
    },
  });
  new Gauge({
    name: "chat_bus_consumer_restarts",
    help: "Times each bus consumer was started again after a crash, by consumer group.",
    labelNames: ["group"],
    registers: [opts.metrics.registry],
    collect() {
      this.reset();
      for (const c of bus.consumers()) this.inc({ group: c.groupId }, c.restarts);
    },
  });
  let failing = "";
  const check = () => {
    const down = bus.consumers().filter((c) => c.state === "restarting");
    const groups = down.map((c) => c.groupId).join(", ");
    if (groups !== failing) {
      if (groups) log.warn({ groups }, "bus consumers down");
      else log.info("bus consumers running again");
      failing = groups;
    }
    health.setCheck(
      CONSUMERS_CHECK,
      down.length === 0,
      down
        .map(
          (c) =>
            `${c.groupId} crashed ${Math.round((Date.now() - c.sinceMs) / 1000)} s ago (${c.error ?? "unknown error"}); restarting`,
        )
        .join("; "),
    );
  };
  check();
  const timer = setInterval(check, opts.intervalMs ?? 1_000);
  timer.unref();
  return () => clearInterval(timer);
}
