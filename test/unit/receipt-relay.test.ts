import test from "ava";
import { ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { consumeReceiptUpdated } from "../../services/messaging/consumers/receipt-updated.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import type { Fanout, Push } from "../../services/shared/fanout.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { publishEvents, TOPICS } from "../../services/shared/topics.ts";

const { DELIVERED, READ } = ReceiptKind;

/** relayed runs the relay over `events` published together and returns what it pushed. */
async function relayed(
  events: Array<{ user: string; kind: ReceiptKind; seq: bigint; to: string[]; from: string }>,
) {
  const bus = new MemoryBus();
  const pushes: Push[] = [];
  const fanout = { push: async (p: Push[]) => void pushes.push(...p) } as unknown as Fanout;
  const metrics = createMetrics("test", { processMetrics: false });
  const sub = await consumeReceiptUpdated({
    bus,
    mirrors: [],
    fanout,
    log: silentLogger,
    metrics,
    windowMs: 60_000,
  });
  await publishEvents(
    bus,
    TOPICS.receiptUpdated,
    events.map((e) => ({
      key: "g",
      value: {
        receipt: {
          conversationId: "g",
          userId: e.user,
          kind: e.kind,
          upTo: { seqs: { "us-east-1": e.seq } },
        },
        recipientIds: e.to,
        originRegion: "us-east-1",
        fromDeviceId: e.from,
      },
    })),
  );
  // Handled once the consumer counts them; the window is a minute, so nothing is pushed yet.
  const consumed = async () =>
    (await metrics.consumed.get()).values.reduce((n, v) => n + v.value, 0);
  while ((await consumed()) < events.length) await new Promise((r) => setImmediate(r));
  await sub.close(); // flushes the window
  return pushes.map((p) => ({
    users: [...p.userIds].sort(),
    except: p.exceptDeviceId ?? "",
    receipts: (p.frame.kind.case === "receipts"
      ? p.frame.kind.value.receipts
      : p.frame.kind.case === "receipt"
        ? [p.frame.kind.value]
        : []
    ).map(
      (r) => `${r.userId}/${r.kind === READ ? "READ" : "DELIVERED"}/${r.upTo?.seqs["us-east-1"]}`,
    ),
  }));
}

test("each user is told only the receipts that concern them, in one frame per window", async (t) => {
  const out = await relayed([
    { user: "bob", kind: DELIVERED, seq: 3n, to: ["alice", "bob"], from: "phone" },
    { user: "carol", kind: DELIVERED, seq: 3n, to: ["alice", "carol"], from: "tablet" },
    { user: "bob", kind: DELIVERED, seq: 4n, to: ["alice", "bob", "dave"], from: "phone" },
  ]);
  t.deepEqual(
    out.sort((a, b) => a.users.join().localeCompare(b.users.join())),
    [
      { users: ["alice"], except: "", receipts: ["bob/DELIVERED/4", "carol/DELIVERED/3"] },
      { users: ["bob"], except: "phone", receipts: ["bob/DELIVERED/4"] },
      { users: ["carol"], except: "tablet", receipts: ["carol/DELIVERED/3"] },
      { users: ["dave"], except: "", receipts: ["bob/DELIVERED/4"] },
    ],
  );
});

test("a reader's receipts moved by two of their devices reach each of them", async (t) => {
  const out = await relayed([
    { user: "bob", kind: DELIVERED, seq: 5n, to: ["bob"], from: "laptop" },
    { user: "bob", kind: READ, seq: 5n, to: ["bob"], from: "phone" },
  ]);
  t.deepEqual(
    out.sort((a, b) => a.except.localeCompare(b.except)),
    [
      { users: ["bob"], except: "laptop", receipts: ["bob/DELIVERED/5"] },
      { users: ["bob"], except: "phone", receipts: ["bob/READ/5"] },
    ],
  );
  const same = await relayed([
    { user: "bob", kind: READ, seq: 4n, to: ["bob"], from: "laptop" },
    { user: "bob", kind: READ, seq: 5n, to: ["bob"], from: "phone" },
  ]);
  t.deepEqual(same, [{ users: ["bob"], except: "", receipts: ["bob/READ/5"] }]);
});
