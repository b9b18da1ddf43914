import test, { type ExecutionContext } from "ava";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { FcmPushProvider } from "../../services/notification/push/fcm-push.ts";
import type { PushNote, PushOutcome } from "../../services/notification/push/push-provider.ts";
import { type Clock, SYSTEM_CLOCK } from "../../services/notification/push/retry.ts";
import {
  type Answer,
  FakeClock,
  FakeFcm,
  FCM_ERRORS,
  serviceAccountKeys,
  testCertificate,
} from "../support/push-fakes.ts";

const keys = serviceAccountKeys();

const note: PushNote = {
  title: "alice",
  body: "are you there?",
  conversationId: "c-42",
  collapseKey: "c-42",
  data: { conversation_id: "c-42", origin_region: "us-east-1", seq: "7" },
};

/** setup starts a fake FCM and a provider pointed at it, trusting its certificate. */
async function setup(
  t: ExecutionContext,
  opts: { clock?: Clock; retry?: ConstructorParameters<typeof FcmPushProvider>[0]["retry"] } = {},
) {
  const clock = opts.clock ?? new FakeClock();
  const fcm = await new FakeFcm(keys, clock).start();
  const provider = new FcmPushProvider({
    projectId: keys.projectId,
    serviceAccount: {
      clientEmail: keys.clientEmail,
      privateKey: keys.privateKey,
      privateKeyId: keys.privateKeyId,
      tokenUri: fcm.tokenUrl,
    },
    endpoint: fcm.server.origin,
    ca: testCertificate().cert,
    clock,
    retry: opts.retry,
  });
  t.teardown(async () => {
    await provider.close();
    await fcm.server.close();
  });
  return { fcm, provider, clock };
}

const fcmTarget = (token: string) => ({ platform: PushPlatform.FCM, token });

test("a note goes out as an FCM v1 message, with one access token for several sends", async (t) => {
  const { fcm, provider } = await setup(t);
  for (const token of ["tok-a", "tok-b", "tok-c"]) {
    t.is(await provider.send(fcmTarget(token), note), "sent");
  }
  t.deepEqual(fcm.problems, []);
  t.is(fcm.issued.length, 1, "the access token is cached");
  t.is(provider.tokens.requests, 1);
  t.deepEqual(
    fcm.sends.map((s) => s.accessToken),
    ["ya29.test-1", "ya29.test-1", "ya29.test-1"],
  );
  t.deepEqual(fcm.sends[0]?.message, {
    token: "tok-a",
    notification: { title: "alice", body: "are you there?" },
    data: { conversation_id: "c-42", origin_region: "us-east-1", seq: "7" },
    android: { priority: "high", collapse_key: "c-42", notification: { tag: "c-42" } },
    apns: {
      headers: { "apns-collapse-id": "c-42", "apns-priority": "10" },
      payload: { aps: { "thread-id": "c-42" } },
    },
  });
  // The assertion the token endpoint verified: RS256 by the key, the documented claims.
  const a = fcm.assertions[0];
  t.is(a.iss, keys.clientEmail);
  t.is(a.scope, "https://www.googleapis.com/auth/firebase.messaging");
  t.is(a.aud, fcm.tokenUrl);
  t.is(a.exp - a.iat, 3600);
});

test("the access token is replaced shortly before it expires, not before", async (t) => {
  const clock = new FakeClock();
  const { fcm, provider } = await setup(t, { clock });
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  // expires_in 3599 s; replaced 5 minutes before.
  clock.advance((3599 - 5 * 60) * 1000 - 1_000);
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  t.is(fcm.issued.length, 1);
  clock.advance(2_000);
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  t.is(fcm.issued.length, 2);
  t.deepEqual(
    fcm.sends.map((s) => s.accessToken),
    ["ya29.test-1", "ya29.test-1", "ya29.test-2"],
  );
  t.deepEqual(fcm.problems, []);
});

test("concurrent sends share one token request", async (t) => {
  const { fcm, provider } = await setup(t);
  const outcomes = await Promise.all(
    Array.from({ length: 5 }, (_, i) => provider.send(fcmTarget(`tok-${i}`), note)),
  );
  t.deepEqual(outcomes, ["sent", "sent", "sent", "sent", "sent"]);
  t.is(fcm.issued.length, 1);
});

test("UNREGISTERED and INVALID_ARGUMENT about the token are dead tokens; other errors are not", async (t) => {
  const { fcm, provider } = await setup(t);
  const cases: Array<[string, Answer, PushOutcome]> = [
    ["unregistered", FCM_ERRORS.unregistered, "invalid-token"],
    ["not-a-token", FCM_ERRORS.invalidToken, "invalid-token"],
    ["field-violation", FCM_ERRORS.tokenFieldViolation, "invalid-token"],
    // The same status about the payload, a 404 without UNREGISTERED (a wrong project) and a
    // sender mismatch (a wrong key) would hit every token: none is forgotten for them.
    ["bad-payload", FCM_ERRORS.badPayload, "failed"],
    ["no-project", FCM_ERRORS.noProject, "failed"],
    ["sender-mismatch", FCM_ERRORS.senderMismatch, "failed"],
  ];
  for (const [token, answer] of cases) fcm.script.set(token, [answer]);
  for (const [token, , outcome] of cases) {
    t.is(await provider.send(fcmTarget(token), note), outcome, token);
  }
  t.is(fcm.sends.length, cases.length, "none of them is retried");
});

test("429 waits for Retry-After before trying again", async (t) => {
  // Real time: the fake sees the second request at least a second after the first.
  const { fcm, provider } = await setup(t, { clock: SYSTEM_CLOCK });
  fcm.script.set("tok", [FCM_ERRORS.quota("1")]);
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  const [first, second] = fcm.sends;
  t.truthy(first && second);
  t.true((second?.atMs ?? 0) - (first?.atMs ?? 0) >= 1_000);
});

test("Retry-After as an HTTP date is honoured too", async (t) => {
  const clock = new FakeClock();
  clock.t = Date.parse("2030-01-01T00:00:00Z");
  const { fcm, provider } = await setup(t, { clock });
  fcm.script.set("tok", [FCM_ERRORS.quota("Tue, 01 Jan 2030 00:00:03 GMT")]);
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  t.deepEqual(clock.slept, [3_000]);
});

test("5xx is retried with growing jittered backoff, then given up after 3 attempts", async (t) => {
  const clock = new FakeClock();
  const { fcm, provider } = await setup(t, { clock });
  fcm.script.set("tok", [FCM_ERRORS.unavailable, FCM_ERRORS.unavailable]);
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  // Half the doubled base (500 ms) plus up to as much again (random() is 0.5 here).
  t.deepEqual(clock.slept, [375, 750]);
  fcm.script.set("down", [
    FCM_ERRORS.unavailable,
    FCM_ERRORS.unavailable,
    FCM_ERRORS.unavailable,
    FCM_ERRORS.unavailable,
  ]);
  const before = fcm.sends.length;
  t.is(await provider.send(fcmTarget("down"), note), "failed");
  t.is(fcm.sends.length - before, 3, "bounded attempts");
});

test("a Retry-After past the send's budget fails at once instead of holding up the batch", async (t) => {
  const clock = new FakeClock();
  const { fcm, provider } = await setup(t, { clock });
  fcm.script.set("tok", [FCM_ERRORS.quota("60")]);
  t.is(await provider.send(fcmTarget("tok"), note), "failed");
  t.deepEqual(clock.slept, []);
  t.is(fcm.sends.length, 1);
});

test("a 401 gets a new access token once; a second 401 fails", async (t) => {
  const { fcm, provider } = await setup(t);
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  fcm.revoked.add("ya29.test-1");
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  t.deepEqual(
    fcm.sends.map((s) => s.accessToken),
    ["ya29.test-1", "ya29.test-2"],
  );
  t.is(fcm.issued.length, 2);
  fcm.script.set("tok", [FCM_ERRORS.unauthenticated, FCM_ERRORS.unauthenticated]);
  const before = fcm.sends.length;
  t.is(await provider.send(fcmTarget("tok"), note), "failed");
  t.is(fcm.sends.length - before, 2);
  t.is(fcm.issued.length, 3, "one refresh per send");
});

test("a refused key fails without retrying; a failing token endpoint is retried", async (t) => {
  const clock = new FakeClock();
  const { fcm, provider } = await setup(t, { clock });
  fcm.tokenScript.push({
    status: 400,
    body: { error: "invalid_grant", error_description: "Invalid JWT Signature." },
  });
  t.is(await provider.send(fcmTarget("tok"), note), "failed");
  t.is(fcm.sends.length, 0);
  t.is(provider.tokens.requests, 1);
  fcm.tokenScript.push({ status: 503, body: { error: "backend_error" } });
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  t.is(provider.tokens.requests, 3);
});

test("an assertion signed with another key is refused by the token endpoint", async (t) => {
  const { fcm } = await setup(t);
  const stranger = new FcmPushProvider({
    projectId: keys.projectId,
    serviceAccount: {
      clientEmail: keys.clientEmail,
      privateKey: serviceAccountKeys().privateKey,
      privateKeyId: keys.privateKeyId,
      tokenUri: fcm.tokenUrl,
    },
    endpoint: fcm.server.origin,
    ca: testCertificate().cert,
    clock: new FakeClock(),
  });
  t.teardown(() => stranger.close());
  t.is(await stranger.send(fcmTarget("tok"), note), "failed");
  t.is(fcm.sends.length, 0);
  t.regex(fcm.problems.join(), /assertion: signature verification failed/);
});

test("each request has a timeout, and the send's time is bounded", async (t) => {
  const { fcm, provider } = await setup(t, {
    clock: SYSTEM_CLOCK,
    retry: { timeoutMs: 1_000, attempts: 2, baseDelayMs: 10, budgetMs: 5_000 },
  });
  // Warm: the access token and the connection are there before FCM stops answering.
  t.is(await provider.send(fcmTarget("warm"), note), "sent");
  fcm.script.set("tok", [
    { status: 200, hang: true },
    { status: 200, hang: true },
  ]);
  const start = Date.now();
  t.is(await provider.send(fcmTarget("tok"), note), "failed");
  const took = Date.now() - start;
  // Two timeouts and a short backoff, with room for a loaded machine: bounded, not hanging.
  t.true(took >= 2_000 && took < 5_000, `took ${took} ms`);
  // The connection that stopped answering is not used again: each try came on a new one.
  const sessions = fcm.server.received
    .filter((r) => r.path.endsWith(":send") && JSON.parse(r.body).message.token === "tok")
    .map((r) => r.session);
  t.true(sessions.length >= 2);
  t.is(new Set(sessions).size, sessions.length);
});

test("http:// endpoints speak HTTP/2 without TLS (local development)", async (t) => {
  const clock = new FakeClock();
  const fcm = await new FakeFcm(keys, clock, { h2c: true }).start();
  const provider = new FcmPushProvider({
    projectId: keys.projectId,
    serviceAccount: {
      clientEmail: keys.clientEmail,
      privateKey: keys.privateKey,
      privateKeyId: keys.privateKeyId,
      tokenUri: fcm.tokenUrl,
    },
    endpoint: fcm.server.origin,
    clock,
  });
  t.teardown(async () => {
    await provider.close();
    await fcm.server.close();
  });
  t.true(fcm.server.origin.startsWith("http://"));
  t.is(await provider.send(fcmTarget("tok"), note), "sent");
  t.deepEqual(fcm.problems, []);
});
