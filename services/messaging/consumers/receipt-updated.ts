import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import { type Receipt, ReceiptSchema } from "../../../gen/chat/v1/types_pb.ts";
import type { Push } from "../../shared/fanout.ts";
import type { Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import { mergeMax, vectorFromProto, vectorToProto } from "../../shared/version-vector.ts";
import type { RelayDeps } from "./relay.ts";

/**
 * consumeReceiptUpdated relays advanced receipts (from every region) to the members connected
 * here, coalesced per conversation. Every message of a group of n moves n delivered receipts,
 * each of which n members should see: n² frames per message if relayed one by one. Instead,
 * the changes of a conversation that arrive within `windowMs` of its first one are merged (per
 * member and kind, the furthest position) and go out as one frame per member device.
 *
 * Receipts are durable in the store (GetReceipts); this is their live notification. A task that
 * dies holding a window loses at most that window's live updates, never the receipts.
 */
export async function consumeReceiptUpdated(
  deps: RelayDeps & { windowMs: number },
): Promise<Subscription> {
  const pending = new Map<string, { recipientIds: string[]; receipts: Map<string, Receipt> }>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const flush = () => {
    timer = undefined;
    const batch = [...pending.values()];
    pending.clear();
    const pushes: Push[] = batch.map(({ recipientIds, receipts }) => {
      const list = [...receipts.values()];
      return {
        userIds: recipientIds,
        frame: create(ServerFrameSchema, {
          kind:
            list.length === 1
              ? { case: "receipt", value: list[0] as Receipt }
              : { case: "receipts", value: { receipts: list } },
        }),
      };
    });
    flushing = flushing
      .then(() => deps.fanout.push(pushes))
      .catch((err) => deps.log.warn({ err }, "could not relay receipts"));
    return flushing;
  };

  const subscription = await consumeEvents({
    bus: deps.bus,
    topic: TOPICS.receiptUpdated,
    mirrors: deps.mirrors,
    groupId: "messaging-receipts",
    log: deps.log,
    metrics: deps.metrics,
    handler: async (events) => {
      for (const { value: e } of events) {
        const r = e.receipt;
        if (!r) continue;
        const conversation = pending.get(r.conversationId) ?? {
          recipientIds: [],
          receipts: new Map<string, Receipt>(),
        };
        // The latest event carries the latest membership.
        conversation.recipientIds = e.recipientIds;
        const key = `${r.userId}\u0000${r.kind}`;
        const earlier = conversation.receipts.get(key);
        conversation.receipts.set(
          key,
          earlier
            ? create(ReceiptSchema, {
                ...r,
                upTo: vectorToProto(
                  mergeMax(vectorFromProto(earlier.upTo), vectorFromProto(r.upTo)),
                ),
              })
            : r,
        );
        pending.set(r.conversationId, conversation);
      }
      if (deps.windowMs === 0) await flush();
      else timer ??= setTimeout(flush, deps.windowMs);
    },
  });
  return {
    async close() {
      await subscription.close();
      clearTimeout(timer);
      await flush();
    },
  };
}
