import test from "ava";
import { ChatClient } from "../../client/index.ts";
import { type LocalBackends, startLocalBackends } from "../../dev/backends/local.ts";
import { ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { missingRealBackend } from "../support/real-backends.ts";
import { within, withRegion } from "../support/region.ts";

// A delivery ack made while the Kafka brokers are away: its receipt cannot be published, and
// the device will not ack that position again. The sender must still get the delivered receipt.

const missing = missingRealBackend();
if (missing) {
  test.skip(`delivery acks during a Kafka outage: ${missing}`, () => {});
} else {
  let backends: LocalBackends | undefined;
  test.before(async () => {
    backends = await startLocalBackends();
  });
  test.after.always(async () => {
    await backends?.busDown(false);
    await backends?.stop();
  });

  test("an ack made while Kafka is away becomes the sender's delivered receipt once it is back", async (t) => {
    const b = backends as LocalBackends;
    // The outage is shorter than the canary's timeout: the region stays in service.
    const region = await withRegion(t, { env: { ...b.env, CANARY_TIMEOUT_MS: "60000" } });
    const open = (user: string, ackDelayMs = 250) => {
      const c = new ChatClient({
        url: region.wsUrl,
        token: () => region.token(user),
        deviceId: "phone",
        ackDelayMs,
      });
      t.teardown(() => c.close());
      return c;
    };
    const alice = open("alice");
    // bob acknowledges a second after a delivery: by then the brokers are gone.
    const bob = open("bob", 1_000);
    const bobSaw = new MessageRecorder(bob);
    await alice.connect();
    await bob.connect();
    const dm = await alice.createDirect("bob");
    const delivered = alice.once(
      "receipt",
      (r) => r.userId === "bob" && r.kind === ReceiptKind.DELIVERED && r.conversationId === dm.id,
    );
    const m = await alice.send(dm.id, "ack me");
    await bobSaw.count(1, dm.id, 15_000);
    await b.busDown(true);
    // bob's ack leaves now, and fails (the receipt's event cannot be published).
    await new Promise((r) => setTimeout(r, 6_000));
    await b.busDown(false);
    const [receipt] = await within(delivered, 30_000, "bob's delivered receipt");
    t.is(receipt.upTo?.seqs[region.region], m.seq);
  });
}
