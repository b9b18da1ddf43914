import test, { type ExecutionContext } from "ava";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import {
  APNS_PRODUCTION,
  ApnsPushProvider,
  apnsCollapseId,
} from "../../services/notification/push/apns-push.ts";
import type { PushNote, PushOutcome } from "../../services/notification/push/push-provider.ts";
import { type Clock, SYSTEM_CLOCK } from "../../services/notification/push/retry.ts";
import {
  type Answer,
  APNS_ERRORS,
  apnsKeys,
  FakeApns,
  FakeClock,
  testCertificate,
} from "../support/push-fakes.ts";

const keys = apnsKeys();
const MINUTE = 60_000;

const note: PushNote = {
  title: "alice",
  body: "are you there?",
  conversationId: "c-42",
  collapseKey: "c-42",
  data: { conversation_id: "c-42", origin_region: "us-east-1", seq: "7" },
};

/** A device token as iOS hands it over: 32 bytes, hex. */
const device = (n: number) => n.toString(16).padStart(64, "0");
const apnsTarget = (token: string) => ({ platform: PushPlatform.APNS, token });

async function setup(t: ExecutionContext, opts: { clock?: Clock } = {}) {
  const clock = opts.clock ?? new FakeClock();
  const apns = await new FakeApns(keys, clock).start();
  const provider = new ApnsPushProvider({
    key: keys.key,
    keyId: keys.keyId,
    teamId: keys.teamId,
    topic: keys.topic,
    endpoint: apns.server.origin,
    ca: testCertificate().cert,
    clock,
  });
  t.teardown(async () => {
    await provider.close();
    await apns.server.close();
  });
  return { apns, provider, clock };
}

test("a note goes to /3/device/<token> with the APNs headers, payload and a provider token", async (t) => {
  const { apns, provider } = await setup(t);
  for (const n of [1, 2, 3]) t.is(await provider.send(apnsTarget(device(n)), note), "sent");
  t.deepEqual(apns.problems, []);
  const [first] = apns.sends;
  t.is(first?.deviceToken, device(1));
  t.is(first?.headers["apns-topic"], keys.topic);
  t.is(first?.headers["apns-push-type"], "alert");
  t.is(first?.headers["apns-priority"], "10");
  t.is(first?.headers["apns-collapse-id"], "c-42");
  t.deepEqual(first?.payload, {
    aps: { alert: { title: "alice", body: "are you there?" }, "thread-id": "c-42" },
    conversation_id: "c-42",
    origin_region: "us-east-1",
    seq: "7",
  });
  // One provider token and one connection for all of them.
  t.is(provider.tokens.minted, 1);
  t.is(new Set(apns.sends.map((s) => s.jwt)).size, 1);
  t.is(apns.server.sessions, 1);
  t.is(provider.http.connections, 1);
});

test("the provider token is reused for 50 minutes and then replaced", async (t) => {
  const clock = new FakeClock();
  const { apns, provider } = await setup(t, { clock });
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  clock.advance(49 * MINUTE);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  t.is(provider.tokens.minted, 1);
  clock.advance(1 * MINUTE);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  t.is(provider.tokens.minted, 2);
  const [a, b, c] = apns.sends;
  t.is(a?.jwt, b?.jwt);
  t.not(b?.jwt, c?.jwt);
  t.is((c?.iat ?? 0) - (a?.iat ?? 0), 50 * 60);
  t.deepEqual(apns.problems, [], "no TooManyProviderTokenUpdates, no ExpiredProviderToken");
});

test("410 and BadDeviceToken are dead tokens; DeviceTokenNotForTopic is not", async (t) => {
  const { apns, provider } = await setup(t);
  const cases: Array<[number, Answer, PushOutcome]> = [
    [1, APNS_ERRORS.unregistered, "invalid-token"],
    [2, APNS_ERRORS.badDeviceToken, "invalid-token"],
    // A wrong APNS_TOPIC would say this of every token.
    [3, APNS_ERRORS.notForTopic, "failed"],
  ];
  for (const [n, answer] of cases) apns.script.set(device(n), [answer]);
  for (const [n, , outcome] of cases) {
    t.is(await provider.send(apnsTarget(device(n)), note), outcome);
  }
  t.is(apns.sends.length, 3, "none is retried");
});

test("429 and 503 are retried with backoff; after 3 attempts the send fails", async (t) => {
  const clock = new FakeClock();
  const { apns, provider } = await setup(t, { clock });
  apns.script.set(device(1), [APNS_ERRORS.tooManyRequests, APNS_ERRORS.unavailable]);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  t.deepEqual(clock.slept, [375, 750]);
  apns.script.set(device(2), [
    APNS_ERRORS.unavailable,
    APNS_ERRORS.unavailable,
    APNS_ERRORS.unavailable,
  ]);
  t.is(await provider.send(apnsTarget(device(2)), note), "failed");
  t.is(apns.sends.filter((s) => s.deviceToken === device(2)).length, 3);
});

test("Retry-After is honoured when APNs sends one", async (t) => {
  const { apns, provider } = await setup(t, { clock: SYSTEM_CLOCK });
  apns.script.set(device(1), [{ ...APNS_ERRORS.unavailable, headers: { "retry-after": "1" } }]);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  const [first, second] = apns.sends;
  t.true((second?.atMs ?? 0) - (first?.atMs ?? 0) >= 1_000);
});

test("ExpiredProviderToken gets a new provider token when the old one may be replaced", async (t) => {
  const clock = new FakeClock();
  const { apns, provider } = await setup(t, { clock });
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  clock.advance(30 * MINUTE);
  apns.script.set(device(1), [APNS_ERRORS.expiredProviderToken]);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  t.is(provider.tokens.minted, 2);
  const jwts = apns.sends.map((s) => s.jwt);
  t.is(jwts[1], jwts[0], "the refused request carried the old token");
  t.not(jwts[2], jwts[0], "the retry a new one");
  t.deepEqual(apns.problems, []);
});

test("ExpiredProviderToken for a young token fails without replacing it (clock skew)", async (t) => {
  const clock = new FakeClock();
  const { apns, provider } = await setup(t, { clock });
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  clock.advance(5 * MINUTE);
  apns.script.set(device(1), [APNS_ERRORS.expiredProviderToken]);
  t.is(await provider.send(apnsTarget(device(1)), note), "failed");
  t.is(provider.tokens.minted, 1, "no new token within 20 minutes of the last");
  t.is(apns.sends.length, 2);
});

test("a provider token older than an hour is one APNs refuses: it is never used", async (t) => {
  const clock = new FakeClock();
  const { apns, provider } = await setup(t, { clock });
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  clock.advance(61 * MINUTE);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  t.is(provider.tokens.minted, 2);
  t.deepEqual(apns.problems, []);
});

test("a closed connection is replaced on the next send", async (t) => {
  const { apns, provider } = await setup(t, { clock: SYSTEM_CLOCK });
  apns.script.set(device(1), [{ status: 200, goaway: true }]);
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  await new Promise((r) => setTimeout(r, 50));
  t.is(await provider.send(apnsTarget(device(2)), note), "sent");
  t.is(await provider.send(apnsTarget(device(3)), note), "sent");
  t.is(apns.server.sessions, 2);
  t.deepEqual(
    apns.sends.map((s) => s.session),
    [1, 2, 2],
  );
});

test("the connection dropping under a request is retried on a new one", async (t) => {
  const clock = new FakeClock();
  const { apns, provider } = await setup(t, { clock });
  t.is(await provider.send(apnsTarget(device(1)), note), "sent");
  // The fake answers nothing and drops every connection: the request fails and is retried.
  apns.script.set(device(2), [{ status: 200, hang: true }]);
  const sending = provider.send(apnsTarget(device(2)), note);
  while (apns.server.received.length < 2) await new Promise((r) => setTimeout(r, 10));
  await apns.server.dropConnections();
  t.is(await sending, "sent");
  t.is(apns.server.sessions, 2);
});

test("a collapse id over 64 bytes is hashed, the same way each time", async (t) => {
  const { apns, provider } = await setup(t);
  const long = "x".repeat(100);
  t.is(await provider.send(apnsTarget(device(1)), { ...note, collapseKey: long }), "sent");
  const sent = String(apns.sends[0]?.headers["apns-collapse-id"]);
  t.is(sent.length, 43);
  t.is(sent, apnsCollapseId(long));
  t.is(apnsCollapseId("c-42"), "c-42");
});

test("a key APNs does not know is InvalidProviderToken: failed, the token kept", async (t) => {
  const { apns } = await setup(t);
  const stranger = new ApnsPushProvider({
    ...keys,
    key: apnsKeys().key,
    endpoint: apns.server.origin,
    ca: testCertificate().cert,
    clock: new FakeClock(),
  });
  t.teardown(() => stranger.close());
  t.is(await stranger.send(apnsTarget(device(1)), note), "failed");
  t.regex(apns.problems.join(), /signature verification failed/);
});

test("production is the default host", (t) => {
  t.is(APNS_PRODUCTION, "https://api.push.apple.com");
});
