import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import type { Subscription } from "../../shared/ports/bus.ts";
import { TOPICS } from "../../shared/topics.ts";
import { type RelayDeps, relay } from "./relay.ts";

/** consumeReceiptUpdated relays advanced receipts (from every region) to members connected here. */
export function consumeReceiptUpdated(deps: RelayDeps): Promise<Subscription> {
  return relay(deps, {
    topic: TOPICS.receiptUpdated,
    groupId: "messaging-receipts",
    toPush: (e) =>
      e.receipt && {
        userIds: e.recipientIds,
        frame: create(ServerFrameSchema, { kind: { case: "receipt", value: e.receipt } }),
      },
  });
}
