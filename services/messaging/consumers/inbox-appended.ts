import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import type { Subscription } from "../../shared/ports/bus.ts";
import { TOPICS } from "../../shared/topics.ts";
import { type RelayDeps, relay } from "./relay.ts";

/**
 * consumeRemoteInboxAppended delivers other regions' inbox entries to the recipients' devices
 * connected here. This region's own entries were delivered by routing already.
 */
export function consumeRemoteInboxAppended(deps: RelayDeps): Promise<Subscription> {
  return relay(deps, {
    topic: TOPICS.inboxAppended,
    sources: "peers",
    groupId: "messaging-remote-delivery",
    toPush: (e) =>
      e.entry && {
        userIds: [e.userId],
        frame: create(ServerFrameSchema, {
          kind: { case: "deliveries", value: { entries: [e.entry], replay: false } },
        }),
      },
  });
}
