import test from "ava";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { connect, within, withRegion } from "../support/region.ts";
import { startWebhook } from "../support/webhook.ts";

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
