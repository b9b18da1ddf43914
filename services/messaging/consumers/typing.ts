import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import type { Fanout } from "../../shared/fanout.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Metrics } from "../../shared/metrics.ts";
import type { Bus, Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";

/** consumeTyping relays typing indicators (from every region) to members connected here. */
export function consumeTyping(deps: {
  bus: Bus;
  peers: readonly string[];
  fanout: Fanout;
  log: Logger;
  metrics: Metrics;
}): Promise<Subscription> {
  return consumeEvents({
    bus: deps.bus,
    topic: TOPICS.typing,
    peers: deps.peers,
    groupId: "messaging-typing",
    // Typing is ephemeral: after a restart, old indicators are worthless.
    fromBeginning: false,
    log: deps.log,
    metrics: deps.metrics,
    handler: (events) =>
      deps.fanout.push(
        events.flatMap(({ value }) =>
          value.typing
            ? [
                {
                  userIds: value.recipientIds,
                  frame: create(ServerFrameSchema, {
                    kind: { case: "typing", value: value.typing },
                  }),
                },
              ]
            : [],
        ),
      ),
  });
}
