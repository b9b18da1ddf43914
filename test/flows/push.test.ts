import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { connect, within, withRegion } from "../support/region.ts";

/** consumed resolves once a service's metrics show `n` records of a topic handled. */
async function consumed(serviceUrl: string, topic: string, n: number) {
  const pattern = new RegExp(
    `chat_bus_records_total\\{[^}]*topic="${topic.replace(".", "\\.")}"[^}]*outcome="ok"[^}]*\\} (\\d+)`,
  );
  for (;;) {
    const text = await (await fetch(`${serviceUrl}/metrics`)).text();
    const m = pattern.exec(text);
    if (m && Number(m[1]) >= n) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** startWebhook starts a local endpoint that records the pushes POSTed to it. */
async function startWebhook(t: { teardown: (f: () => void) => void }) {
  const received: Array<Record<string, unknown>> = [];
  let notify: (() => void) | undefined;
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push(JSON.parse(body));
      res.writeHead(200);
      res.end();
      notify?.();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => server.close());
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`,
    received,
    next: () =>
      new Promise<void>((r) => {
        notify = r;
      }),
  };
}

test("an offline recipient gets a push through the webhook provider; an online one does not", async (t) => {
  const hook = await startWebhook(t);
  const region = await withRegion(t, {
    env: { PUSH_PROVIDER: "webhook", PUSH_WEBHOOK_URL: hook.url, PUSH_DELAY_MS: "300" },
  });
  const alice = await connect(t, region, "alice");
  const bobPhone = await connect(t, region, "bob", "phone");
  await bobPhone.registerPushToken(PushPlatform.FCM, "bob-fcm-token");
  const carol = await connect(t, region, "carol", "phone");
  await carol.registerPushToken(PushPlatform.APNS, "carol-apns-token");
  const group = await alice.createGroup("g", ["bob", "carol"]);
  await bobPhone.close(); // bob goes offline; carol stays online and acknowledges

  const pushed = hook.next();
  await alice.send(group.id, "are you there?");
  await within(pushed, 10_000, "the push for bob");
  // Wait until notification has finished with all three inbox entries (alice, bob, carol).
  await within(consumed(region.urls.notification, "inbox.appended", 3), 10_000, "push decisions");
  t.is(hook.received.length, 1, "carol's device acknowledged in time: no push for her");
  t.like(hook.received[0], {
    platform: "FCM",
    token: "bob-fcm-token",
    title: "alice",
    body: "are you there?",
    conversationId: group.id,
    collapseKey: group.id,
  });
});
