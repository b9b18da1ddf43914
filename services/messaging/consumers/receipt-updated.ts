import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import type { Fanout } from "../../shared/fanout.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";

/** consumeReceiptUpdated relays advanced receipts (from every region) to members connected here. */
export function consumeReceiptUpdated(deps: {
  bus: Bus;
  peers: readonly string[];
  fanout: Fanout;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.receiptUpdated,
    peers: deps.peers,
    groupId: "messaging-receipts",
    log: deps.log,
    metrics: deps.metrics,
    handler: (events) =>
      deps.fanout.push(
        events.flatMap(({ value }) =>
          value.receipt
            ? [
                {
                  userIds: value.recipientIds,
                  frame: create(ServerFrameSchema, {
                    kind: { case: "receipt", value: value.receipt },
                  }),
                },
              ]
            : [],
        ),
      ),
  });
}
