import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import test, { type ExecutionContext } from "ava";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { PushPlatform } from "../../gen/chat/v1/types_pb.ts";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.ts";
import { generateKeySet, signerOf } from "../../services/shared/internal-auth.ts";
import { connect, withRegion } from "../support/region.ts";

// The attacks of the security review, against a whole region over its real ports: whatever
// reaches a service port without a service's credential is refused, no header makes a user,
// and each service's key opens only what that service needs.

type Service = typeof MessagingService | typeof NotificationService | typeof PersistenceService;

/** clientOf calls `service` at `url` with `headers` on every request, and nothing else. */
function clientOf<S extends Service>(
  t: ExecutionContext,
  service: S,
  url: string,
  headers: Record<string, string> = {},
): Client<S> {
  const withHeaders: Interceptor = (next) => (req) => {
    for (const [k, v] of Object.entries(headers)) req.header.set(k, v);
    return next(req);
  };
  t.log(`calling ${service.typeName} with ${Object.keys(headers).join(", ") || "no headers"}`);
  return createClient(service, createGrpcTransport({ baseUrl: url, interceptors: [withHeaders] }));
}

/** outcome is how a call ended: its code and message (Ok when it succeeded). */
async function outcome(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
    return { code: OK, message: "" };
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: ce.code, message: ce.rawMessage };
  }
}

/** OK stands for a call that succeeded (Code has no member for it). */
const OK = -1 as Code;

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

test("without a service's token, persistence reads and writes nothing; health stays open", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  await connect(t, region, "bob");
  const dm = await alice.createDirect("bob");
  await alice.send(dm.id, "hello bob");
  const p = clientOf(t, PersistenceService, region.urls.persistence, { "chat-user-id": "bob" });
  const attempts = {
    readInbox: p.readInbox({ userId: "bob", limit: 10 }),
    listPushTokens: p.listPushTokens({ userId: "bob" }),
    readHistory: p.readHistory({ query: { conversationId: dm.id, limit: 10 } }),
    appendMessage: p.appendMessage({
      conversationId: dm.id,
      senderId: "alice",
      clientMsgId: "forged",
      content: { case: "text", value: "forged by nobody" },
    }),
  };
  for (const [name, call] of Object.entries(attempts)) {
    const { code, message } = await outcome(call);
    t.is(code, Code.Unauthenticated, `${name}: ${message}`);
    t.regex(message, /needs an internal token/);
  }
  const health = createClient(Health, createGrpcTransport({ baseUrl: region.urls.persistence }));
  t.is((await health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
  const history = await alice.history(dm.id);
  t.deepEqual(
    history.messages.map((m) => (m.content.case === "text" ? m.content.value : "")),
    ["hello bob"],
    "nothing forged was stored",
  );
});

test("messaging and notification act only for the user a gateway's token names, never a header's", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  await alice.createDirect("bob");
  // A bare header, as before: refused.
  const bare = clientOf(t, MessagingService, region.urls.messaging, { "chat-user-id": "alice" });
  t.is((await outcome(bare.listConversations({}))).code, Code.Unauthenticated);
  const push = clientOf(t, NotificationService, region.urls.notification, {
    "chat-user-id": "alice",
  });
  const register = { platform: PushPlatform.FCM, token: "attacker-device" };
  t.is((await outcome(push.registerPushToken(register))).code, Code.Unauthenticated);
  // A gateway's token for no user, with the header smuggled next to it: still no user.
  const smuggled = clientOf(t, MessagingService, region.urls.messaging, {
    ...bearer(await region.internalToken("messaging", undefined, "gateway")),
    "chat-user-id": "alice",
  });
  const { code, message } = await outcome(smuggled.listConversations({}));
  t.is(code, Code.Unauthenticated);
  t.regex(message, /acts for no user/);
  // The gateway's token naming alice is alice.
  const asAlice = clientOf(t, MessagingService, region.urls.messaging, {
    ...bearer(await region.internalToken("messaging", "alice", "gateway")),
  });
  t.is((await asAlice.listConversations({})).page?.conversations.length, 1);
});

test("tokens signed by a key the region does not trust, or addressed elsewhere, are refused", async (t) => {
  const region = await withRegion(t);
  // An attacker's own key pair, named like the gateway's.
  const forged = await signerOf(generateKeySet("dev"), "gateway").token("messaging", {
    userId: "alice",
    deviceId: "phone",
  });
  const m = clientOf(t, MessagingService, region.urls.messaging, bearer(forged));
  const refused = await outcome(m.listConversations({}));
  t.is(refused.code, Code.Unauthenticated);
  t.regex(refused.message, /signature verification failed/);
  // A real gateway token for messaging, presented to persistence.
  const elsewhere = clientOf(
    t,
    PersistenceService,
    region.urls.persistence,
    bearer(await region.internalToken("messaging", "alice", "gateway")),
  );
  const wrongAudience = await outcome(elsewhere.listPushTokens({ userId: "alice" }));
  t.is(wrongAudience.code, Code.Unauthenticated);
  t.regex(wrongAudience.message, /aud/);
});

test("each service's key opens only what that service needs", async (t) => {
  const region = await withRegion(t);
  const persistenceAs = async (identity: "gateway" | "notification" | "operator" | "messaging") =>
    clientOf(
      t,
      PersistenceService,
      region.urls.persistence,
      bearer(await region.internalToken("persistence", undefined, identity)),
    );
  const append = {
    conversationId: "c1",
    senderId: "alice",
    clientMsgId: "x",
    content: { case: "text" as const, value: "x" },
  };
  // The gateway faces the internet: persistence does not take its key at all.
  const gateway = await persistenceAs("gateway");
  t.is((await outcome(gateway.readInbox({ userId: "bob", limit: 1 }))).code, Code.PermissionDenied);
  // Notification reads inboxes and keeps push tokens, but cannot write the chat.
  const notification = await persistenceAs("notification");
  t.is((await outcome(notification.readInbox({ userId: "bob", limit: 1 }))).code, OK);
  const denied = await outcome(notification.appendMessage(append));
  t.is(denied.code, Code.PermissionDenied);
  t.regex(denied.message, /notification may not call chat.v1.PersistenceService\/AppendMessage/);
  // Operators' tools read, and write nothing.
  const operator = await persistenceAs("operator");
  t.is((await outcome(operator.listPushTokens({ userId: "bob" }))).code, OK);
  t.is((await outcome(operator.appendMessage(append))).code, Code.PermissionDenied);
  // Messaging writes the chat, but has no business with push tokens.
  const messaging = await persistenceAs("messaging");
  t.is((await outcome(messaging.listPushTokens({ userId: "bob" }))).code, Code.PermissionDenied);
});

test("the dev issuer hands out operators' read-only tokens for probing a local region", async (t) => {
  const region = await withRegion(t);
  const alice = await connect(t, region, "alice");
  await alice.createDirect("bob");
  const res = await fetch(`${region.issuer.url}/internal-token?to=messaging&user=alice`);
  const { token } = (await res.json()) as { token: string };
  const m = clientOf(t, MessagingService, region.urls.messaging, bearer(token));
  t.is((await m.listConversations({})).page?.conversations.length, 1);
  const write = await outcome(m.setTyping({ typing: { conversationId: "c", active: true } }));
  t.is(write.code, Code.PermissionDenied);
  const bad = await fetch(`${region.issuer.url}/internal-token?to=gateway`);
  t.is(bad.status, 400);
});
