import type { Client } from "@connectrpc/connect";
import type { PersistenceService } from "../../../gen/chat/v1/persistence_pb.ts";
import type { Fanout } from "../../shared/fanout.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import type { PeerLiveness } from "../peer-liveness.ts";

/**
 * consumeCanary takes this region's gateways' delivery canaries through the store and back to
 * each instance over its delivery channel (see gateway/canary.ts). A canary the store does not
 * give back is not returned: the gateway's health then says the region cannot deliver.
 */
export function consumeCanary(deps: {
  bus: Bus;
  persistence: Pick<Client<typeof PersistenceService>, "probe">;
  fanout: Pick<Fanout, "returnCanary">;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.canary,
    sources: "local",
    groupId: "messaging-canary",
    // A canary older than its gateway's patience proves nothing: start from now.
    fromBeginning: false,
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      await Promise.all(
        events.map(async ({ value: c }) => {
          const { ok } = await deps.persistence.probe({ instanceId: c.instanceId, nonce: c.nonce });
          if (ok) await deps.fanout.returnCanary(c.instanceId, c.nonce);
          else deps.log.error({ instance: c.instanceId }, "the store did not give the canary back");
        }),
      );
    },
  });
}

/** consumePeerCanaries records other regions' signs of life from their mirrored canaries. */
export function consumePeerCanaries(deps: {
  bus: Bus;
  mirrors: readonly string[];
  liveness: PeerLiveness;
  /** instanceId: every task keeps its own view, so each reads every canary (own group). */
  instanceId: string;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.canary,
    mirrors: deps.mirrors,
    sources: "peers",
    groupId: `messaging-peer-canaries-${deps.instanceId}`,
    fromBeginning: false,
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      for (const { value } of events) deps.liveness.seen(value.region);
    },
  });
}
