import test from "ava";
import { ChatClient } from "../../client/index.ts";
import { type FaultBackends, startFaultBackends } from "../support/fault-backends.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { missingRealBackend } from "../support/real-backends.ts";
import { within, withRegion } from "../support/region.ts";

// A whole region on the real local backends; DynamoDB Local dies under it while a user sends.
// The SDK must keep the send pending (the errors it gets are retryable) and resolve it with
// the stored message once DynamoDB is back: stored once, delivered once.

const missing = missingRealBackend();
let backends: FaultBackends | undefined;

if (missing) {
  test.skip(`store outage: ${missing}`, () => {});
} else {
  test.before(async () => {
    backends = await startFaultBackends();
  });
  test.after.always(async () => {
    await backends?.stop();
  });

  test("a send during a DynamoDB outage is acknowledged after the restart, not refused", async (t) => {
    t.timeout(150_000);
    const b = backends as FaultBackends;
    // A long canary timeout keeps the region from sending its clients away meanwhile (what a
    // store outage does to the delivery canary is another story).
    const region = await withRegion(t, {
      env: {
        ...b.env,
        CHAT_REGION: "us-east-1",
        HOST: "127.0.0.1",
        LOG_LEVEL: "warn",
        CANARY_TIMEOUT_MS: "120000",
      },
    });
    const client = (user: string) => {
      const c = new ChatClient({
        url: region.wsUrl,
        token: () => region.token(user),
        deviceId: "phone",
        reconnect: { initialMs: 100, maxMs: 1_000 },
        gapTimeoutMs: 500,
      });
      t.teardown(() => c.close());
      return c;
    };
    const alice = client("alice");
    const bob = client("bob");
    const bobSaw = new MessageRecorder(bob);
    await alice.connect();
    await bob.connect();
    const dm = await alice.createDirect("bob");
    await alice.send(dm.id, "before");

    await b.dynamo.kill();
    let attempts = 0;
    alice.on("attempt", () => {
      attempts++;
    });
    let settled: "pending" | "acked" | string = "pending";
    const sent = alice.send(dm.id, "during the outage");
    sent.then(
      () => {
        settled = "acked";
      },
      (err: Error) => {
        settled = `rejected: ${err.message}`;
      },
    );
    // Long enough for several answers from the region (each after the SDK's own retries of
    // DynamoDB): the send is still pending, being retried.
    const deadline = Date.now() + 20_000;
    while (attempts < 3 && settled === "pending" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    t.is(settled, "pending", "the send is kept pending while DynamoDB is down");
    t.true(attempts >= 3, `the SDK retried the send (${attempts} attempts)`);

    await b.dynamo.start();
    const stored = await within(sent, 60_000, "the send's acknowledgement after the restart");
    t.is(stored.content.case === "text" ? stored.content.value : "", "during the outage");

    const history = await alice.history(dm.id, { limit: 100 });
    t.deepEqual(
      history.messages.map((m) => (m.content.case === "text" ? m.content.value : "")),
      ["before", "during the outage"],
      "stored once",
    );
    await bobSaw.count(2, dm.id, 30_000);
    t.deepEqual(bobSaw.texts(dm.id), ["before", "during the outage"], "delivered once");
  });
}
