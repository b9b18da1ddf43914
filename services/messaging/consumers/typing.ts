import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import type { Subscription } from "../../shared/ports/bus.ts";
import { TOPICS } from "../../shared/topics.ts";
import { type RelayDeps, relay } from "./relay.ts";

/** consumeTyping relays typing indicators (from every region) to members connected here. */
export function consumeTyping(deps: RelayDeps): Promise<Subscription> {
  return relay(deps, {
    topic: TOPICS.typing,
    groupId: "messaging-typing",
    // Typing is ephemeral: after a restart, old indicators are worthless.
    fromBeginning: false,
    toPush: (e) =>
      e.typing && {
        userIds: e.recipientIds,
        frame: create(ServerFrameSchema, { kind: { case: "typing", value: e.typing } }),
      },
  });
}
