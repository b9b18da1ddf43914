import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import type { InboxEntry } from "../../../gen/chat/v1/types_pb.ts";
import type { Fanout } from "../../shared/fanout.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";

/**
 * consumeRemoteInboxAppended delivers other regions' inbox entries to the recipients' devices
 * connected here. This region's own entries were delivered by routing already.
 */
export function consumeRemoteInboxAppended(deps: {
  bus: Bus;
  peers: readonly string[];
  fanout: Fanout;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.inboxAppended,
    peers: deps.peers,
    sources: "peers",
    groupId: "messaging-remote-delivery",
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      const byUser = new Map<string, InboxEntry[]>();
      for (const { value } of events) {
        if (!value.entry) continue;
        const list = byUser.get(value.userId) ?? [];
        list.push(value.entry);
        byUser.set(value.userId, list);
      }
      await deps.fanout.push(
        [...byUser].map(([userId, entries]) => ({
          userIds: [userId],
          frame: create(ServerFrameSchema, {
            kind: { case: "deliveries", value: { entries, replay: false } },
          }),
        })),
      );
    },
  });
}
