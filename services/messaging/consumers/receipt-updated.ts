import { create } from "@bufbuild/protobuf";
import { ServerFrameSchema } from "../../../gen/chat/v1/client_pb.ts";
import { type Receipt, ReceiptSchema } from "../../../gen/chat/v1/types_pb.ts";
import type { Push } from "../../shared/fanout.ts";
import type { Subscription } from "../../shared/ports/bus.ts";
import { consumeEvents, TOPICS } from "../../shared/topics.ts";
import { mergeMax, vectorFromProto, vectorToProto } from "../../shared/version-vector.ts";
import type { RelayDeps } from "./relay.ts";

/** Told is a receipt to tell, and the device to leave out: the one that moved it ("": none). */
interface Told {
  receipt: Receipt;
  except: string;
}

/**
 * consumeReceiptUpdated relays advanced receipts (from every region) to the users connected
 * here that each concerns (its recipient_ids: the senders of the messages it covers and the
 * reader, whose device that moved it is left out), coalesced: the changes of a conversation
 * that arrive within `windowMs` of its first one are merged per user (per member and kind, the
 * furthest position) and go out as one frame per user device. A sender in a busy group hears
 * of all of its members' receipts in one frame per window, instead of every member hearing of
 * every receipt.
 *
 * Receipts are durable in the store (GetReceipts); this is their live notification. A task that
 * dies holding a window loses at most that window's live updates, never the receipts.
 */
export async function consumeReceiptUpdated(
  deps: RelayDeps & { windowMs: number },
): Promise<Subscription> {
  // conversation → user → receipt key → what to tell
  const pending = new Map<string, Map<string, Map<string, Told>>>();
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const flush = () => {
    timer = undefined;
    const pushes: Push[] = [];
    for (const byUser of pending.values()) {
      // Users told the same receipts, leaving out the same device, share one frame.
      const shared = new Map<string, Push & { userIds: string[] }>();
      for (const [userId, told] of byUser) {
        for (const [except, list] of Map.groupBy(told.values(), (t) => t.except)) {
          const receipts = list.map((t) => t.receipt);
          const key = [except, ...receipts.map(signature)].join("\u0001");
          const push = shared.get(key);
          if (push) push.userIds.push(userId);
          else {
            shared.set(key, {
              userIds: [userId],
              exceptDeviceId: except,
              frame: create(ServerFrameSchema, {
                kind:
                  receipts.length === 1
                    ? { case: "receipt", value: receipts[0] as Receipt }
                    : { case: "receipts", value: { receipts } },
              }),
            });
          }
        }
      }
      pushes.push(...shared.values());
    }
    pending.clear();
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
        const byUser = pending.get(r.conversationId) ?? new Map<string, Map<string, Told>>();
        pending.set(r.conversationId, byUser);
        const key = `${r.userId}\u0000${r.kind}`;
        for (const userId of e.recipientIds) {
          const own = userId === r.userId ? e.fromDeviceId : "";
          const told = byUser.get(userId) ?? new Map<string, Told>();
          byUser.set(userId, told);
          const earlier = told.get(key);
          told.set(
            key,
            earlier
              ? {
                  receipt: create(ReceiptSchema, {
                    ...r,
                    upTo: vectorToProto(
                      mergeMax(vectorFromProto(earlier.receipt.upTo), vectorFromProto(r.upTo)),
                    ),
                  }),
                  // Moved by two devices: each must hear of the other's part.
                  except: earlier.except === own ? own : "",
                }
              : { receipt: r, except: own },
          );
        }
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

/** signature tells receipts apart: whose, which kind, how far. */
function signature(r: Receipt): string {
  return `${r.userId}\u0000${r.kind}=${Object.entries(r.upTo?.seqs ?? {}).join()}`;
}
