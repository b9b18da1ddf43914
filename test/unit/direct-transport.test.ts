import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextKey } from "@connectrpc/connect";
import test from "ava";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { ConversationSchema } from "../../gen/chat/v1/types_pb.ts";
import { callerOf } from "../../services/shared/interceptors.ts";
import {
  ANY,
  actingFor,
  authenticatingInterceptor,
  InternalVerifier,
} from "../../services/shared/internal-auth.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import {
  createAppHealth,
  inProcessTransport,
  type ServiceApp,
} from "../../services/shared/service-app.ts";
import { TEST_PEERS, testSigner } from "../support/in-memory.ts";

/** appOf serves MessagingService methods `impl` implements, with messaging's real interceptors. */
function appOf(impl: Record<string, unknown>): ServiceApp {
  return {
    name: "messaging",
    services: [MessagingService],
    log: silentLogger,
    metrics: createMetrics("messaging", { processMetrics: false }),
    health: createAppHealth([MessagingService]),
    interceptors: [
      authenticatingInterceptor(new InternalVerifier("messaging", TEST_PEERS), { gateway: ANY }),
    ],
    routes: (router) => router.service(MessagingService, impl as never),
    start: async () => {},
    stop: async () => {},
  };
}

const clientOf = (impl: Record<string, unknown>, timeoutMs?: number) =>
  createClient(MessagingService, inProcessTransport(appOf(impl), testSigner("gateway"), timeoutMs));
const alice = { userId: "alice", deviceId: "phone" };

test("a call reaches the handler with the caller its token names, not the caller's context values", async (t) => {
  const callerSide = createContextKey<string>("unset");
  const seen: unknown[] = [];
  const client = clientOf({
    getConversation: (req: { conversationId: string }, ctx: Parameters<typeof callerOf>[0]) => {
      seen.push(callerOf(ctx), ctx.values.get(callerSide), ctx.requestHeader.has("authorization"));
      return { conversation: { id: req.conversationId, memberIds: ["alice"] } };
    },
  });
  const opts = actingFor(alice);
  opts.contextValues?.set(callerSide, "set by the caller");
  const res = await client.getConversation({ conversationId: "c1" }, opts);
  t.is(res.conversation?.id, "c1");
  t.deepEqual(seen, [alice, "unset", true]);
});

test("requests are validated against the contract before the handler runs", async (t) => {
  let ran = false;
  const client = clientOf({
    getConversation: () => {
      ran = true;
      return {};
    },
  });
  const err = await t.throwsAsync(
    client.getConversation({ conversationId: "no spaces" }, actingFor(alice)),
    {
      instanceOf: ConnectError,
    },
  );
  t.is(err.code, Code.InvalidArgument);
  t.regex(err.rawMessage, /conversation_id/);
  t.false(ran);
});

test("without a token the call is refused as over the network", async (t) => {
  const transport = inProcessTransport(appOf({ getConversation: () => ({}) }), null);
  const err = await t.throwsAsync(
    createClient(MessagingService, transport).getConversation({ conversationId: "c1" }),
    { instanceOf: ConnectError },
  );
  t.is(err.code, Code.Unauthenticated);
});

test("neither side can change what the other holds: requests and responses are copies", async (t) => {
  const kept = create(ConversationSchema, { id: "c1", memberIds: ["alice", "bob"] });
  let received: { conversationId: string } | undefined;
  const client = clientOf({
    getConversation: (req: { conversationId: string }) => {
      received = req;
      return { conversation: kept };
    },
  });
  const request = { conversationId: "c1" };
  const res = await client.getConversation(request, actingFor(alice));
  res.conversation?.memberIds.push("mallory");
  request.conversationId = "c2";
  t.deepEqual(kept.memberIds, ["alice", "bob"]);
  t.is(received?.conversationId, "c1");
});

test("errors arrive as the wire carries them: code, message and details, never the cause", async (t) => {
  const client = clientOf({
    getConversation: () => {
      throw new ConnectError(
        "not a member",
        Code.PermissionDenied,
        undefined,
        undefined,
        new Error("secret"),
      );
    },
    listConversations: () => {
      throw new Error("table chat-messages: connection reset by 10.0.3.7");
    },
  });
  const denied = await t.throwsAsync(
    client.getConversation({ conversationId: "c1" }, actingFor(alice)),
    {
      instanceOf: ConnectError,
    },
  );
  t.is(denied.code, Code.PermissionDenied);
  t.is(denied.rawMessage, "not a member");
  t.is(denied.cause, undefined);
  const internal = await t.throwsAsync(client.listConversations({}, actingFor(alice)), {
    instanceOf: ConnectError,
  });
  t.is(internal.code, Code.Internal);
  t.notRegex(internal.message, /10\.0\.3\.7/);
});

test("a handler slower than the deadline: DeadlineExceeded at the deadline, and its signal aborts", async (t) => {
  let aborted: Promise<void> | undefined;
  const client = clientOf(
    {
      getConversation: (_req: unknown, ctx: { signal: AbortSignal }) => {
        aborted = new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        return new Promise(() => {});
      },
    },
    50,
  );
  const started = Date.now();
  const err = await t.throwsAsync(
    client.getConversation({ conversationId: "c1" }, actingFor(alice)),
    {
      instanceOf: ConnectError,
    },
  );
  t.is(err.code, Code.DeadlineExceeded);
  t.true(Date.now() - started < 1000);
  await aborted;
});

test("a caller's abort ends the call as Canceled", async (t) => {
  const client = clientOf({ getConversation: () => new Promise(() => {}) });
  const ac = new AbortController();
  const call = client.getConversation(
    { conversationId: "c1" },
    { ...actingFor(alice), signal: ac.signal },
  );
  ac.abort();
  const err = await t.throwsAsync(call, { instanceOf: ConnectError });
  t.is(err.code, Code.Canceled);
});

test("a method the app does not implement is Unimplemented", async (t) => {
  const err = await t.throwsAsync(
    clientOf({}).getConversation({ conversationId: "c1" }, actingFor(alice)),
    { instanceOf: ConnectError },
  );
  t.is(err.code, Code.Unimplemented);
});
