import test from "ava";
import { ErrorCode } from "../../gen/chat/v1/client_pb.ts";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { connect, within, withRegion } from "../support/region.ts";
import { startWebhook } from "../support/webhook.ts";

// Consent and fan-out limits: what one user can make the service do to others.

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

/** errorOf resolves with what `promise` rejected with (or fails the test when it resolved). */
async function errorOf(promise: Promise<unknown>) {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!err) throw new Error("expected a refusal");
  return err as { code: ErrorCode; message: string; retryable: boolean };
}

test("a user's devices are capped: registering one more forgets the oldest, and a message costs at most the cap in pushes", async (t) => {
  t.timeout(60_000);
  const hook = await startWebhook(t);
  const region = await withRegion(t, {
    env: { PUSH_PROVIDER: "webhook", PUSH_WEBHOOK_URL: hook.url, PUSH_DELAY_MS: "300" },
  });
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  // 25 registrations, one device after the other; the default cap is 20.
  for (let i = 0; i < 25; i++) {
    const device = await connect(t, region, "bob", `device-${i}`);
    await device.registerPushToken(PushPlatform.FCM, `token-${i}`);
    await device.close();
  }
  await alice.send(dm.id, "anyone there?");
  // Both inbox entries (alice's and bob's) have been through the push decision.
  await within(consumed(region.urls.notification, "inbox.appended", 2), 15_000, "push decisions");
  await within(
    (async () => {
      while (hook.received.length < 20) await new Promise((r) => setTimeout(r, 50));
    })(),
    10_000,
    "the pushes",
  );
  await new Promise((r) => setTimeout(r, 300));
  t.deepEqual(
    hook.received.map((p) => p.token).sort(),
    Array.from({ length: 20 }, (_, i) => `token-${i + 5}`).sort(),
    "one push per device for the 20 most recently registered, none for the 5 oldest",
  );
});

test("creating conversations and changing members is rate-limited per user; leaving is not", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const groups: string[] = [];
  // The default budget: 30 at once, then one every 2 s.
  const started = Date.now();
  const refused = await errorOf(
    (async () => {
      while (groups.length < 100)
        groups.push((await alice.createGroup(`g${groups.length}`, ["bob"])).id);
    })(),
  );
  const refilled = Math.ceil((Date.now() - started) / 2_000);
  t.true(
    groups.length >= 30 && groups.length <= 30 + refilled,
    `${groups.length} created before the refusal, in ${Date.now() - started} ms`,
  );
  t.is(refused.code, ErrorCode.RESOURCE_EXHAUSTED);
  t.true(refused.retryable);
  t.regex(refused.message, /at most 30 per minute/);
  // Adding members draws on the same budget (a token may come back in between: twice).
  const adding = await errorOf(
    (async () => {
      for (let i = 0; i < 2; i++) await alice.addMembers(groups[0] as string, [`user${i}`]);
    })(),
  );
  t.is(adding.code, ErrorCode.RESOURCE_EXHAUSTED, "adding members draws on the same budget");
  await alice.leave(groups[1] as string);
  t.pass("leaving a conversation is never limited");
  const carol = await connect(t, region, "carol");
  await carol.createDirect("alice");
  t.pass("the budget is per user");
});

test("presence is shared only between users who have both written in a conversation they share", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const mallory = await connect(t, region, "mallory");
  const online = (ps: Array<{ userId: string; online: boolean }>) =>
    ps.map((p) => `${p.userId}:${p.online ? "online" : "offline"}`);

  // Putting someone into a conversation is not enough to watch them.
  const dm = await alice.createDirect("bob");
  await mallory.createGroup("watching you", ["alice", "bob"]);
  await mallory.createDirect("alice");
  t.deepEqual(online(await mallory.watchPresence(["alice", "bob"])), []);
  t.deepEqual(online(await alice.watchPresence(["bob", "mallory"])), []);

  // Writing to someone is not enough either: they have to write back.
  await alice.send(dm.id, "hi bob");
  t.deepEqual(online(await alice.watchPresence(["bob"])), []);
  t.deepEqual(online(await bob.watchPresence(["alice"])), []);

  await bob.send(dm.id, "hi alice");
  t.deepEqual(online(await alice.watchPresence(["bob", "mallory"])), ["bob:online"]);
  t.deepEqual(online(await bob.watchPresence(["alice"])), ["alice:online"]);
  t.deepEqual(online(await mallory.watchPresence(["alice", "bob"])), []);
  t.deepEqual(online(await mallory.watchPresence(["mallory"])), ["mallory:online"], "oneself");
});
