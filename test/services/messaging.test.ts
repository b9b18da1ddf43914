import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import test from "ava";
import { ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import {
  GatewayDeliverySchema,
  type MessageStored,
  MessageStoredSchema,
  TypingChangedSchema,
} from "../../gen/chat/v1/events_pb.ts";
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { ConversationKind, type Message } from "../../gen/chat/v1/types_pb.ts";
import { Router } from "../../services/messaging/router.ts";
import { build as buildMessaging } from "../../services/messaging/server.ts";
import { build as buildPersistence } from "../../services/persistence/server.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryDeliveryChannel } from "../../services/shared/adapters/memory/memory-delivery-channel.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { MemorySessionRegistry } from "../../services/shared/adapters/memory/memory-session-registry.ts";
import { Fanout } from "../../services/shared/fanout.ts";
import { actingFor } from "../../services/shared/internal-auth.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { inMemoryClient, MESSAGING_TEST_CONFIG, TEST_PEERS } from "../support/in-memory.ts";

function setup() {
  const metrics = createMetrics("test", { processMetrics: false });
  const persistenceApp = buildPersistence({
    peers: TEST_PEERS,
    store: new MemoryChatStore("us-east-1"),
    inbox: new MemoryInboxStore("us-east-1"),
    log: silentLogger,
    metrics,
  });
  const persistence = inMemoryClient(persistenceApp, PersistenceService, "messaging");
  const bus = new MemoryBus();
  const registry = new MemorySessionRegistry();
  const channel = new MemoryDeliveryChannel();
  const app = buildMessaging({
    peers: TEST_PEERS,
    config: MESSAGING_TEST_CONFIG,
    persistence,
    bus,
    registry,
    channel,
    log: silentLogger,
    metrics,
  });
  const messaging = inMemoryClient(app, MessagingService, "gateway");
  const as = (userId: string) => actingFor({ userId, deviceId: "d1" });
  return { messaging, persistence, bus, registry, channel, as };
}

async function rejects(p: Promise<unknown>): Promise<ConnectError> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: ConnectError) => e,
  );
}

test("commands act for the user the gateway's token names; a token naming none is refused", async (t) => {
  const { messaging } = setup();
  const err = await rejects(messaging.listConversations({}));
  t.is(err.code, Code.Unauthenticated);
  t.regex(err.rawMessage, /acts for no user/);
});

test("conversation rules: no self in member lists, direct takes one other, groups have a size limit", async (t) => {
  const { messaging, as } = setup();
  const self = await rejects(
    messaging.createConversation(
      { conversation: { kind: ConversationKind.DIRECT, memberIds: ["alice"], clientMsgId: "a" } },
      as("alice"),
    ),
  );
  t.is(self.code, Code.InvalidArgument);
  const two = await rejects(
    messaging.createConversation(
      {
        conversation: {
          kind: ConversationKind.DIRECT,
          memberIds: ["bob", "carol"],
          clientMsgId: "a",
        },
      },
      as("alice"),
    ),
  );
  t.regex(two.rawMessage, /exactly one other user/);
  const big = await rejects(
    messaging.createConversation(
      {
        conversation: {
          kind: ConversationKind.GROUP,
          memberIds: ["b", "c", "d", "e"],
          clientMsgId: "a",
        },
      },
      as("alice"),
    ),
  );
  t.regex(big.rawMessage, /at most 4 members/);
  const g = await messaging.createConversation(
    {
      conversation: {
        kind: ConversationKind.GROUP,
        memberIds: ["b", "c"],
        clientMsgId: "a",
        title: "t",
      },
    },
    as("alice"),
  );
  const full = await rejects(
    messaging.addMembers(
      {
        change: { conversationId: g.conversation?.id ?? "", userIds: ["d", "e"], clientMsgId: "x" },
      },
      as("b"),
    ),
  );
  t.is(full.code, Code.FailedPrecondition);
  const notCreator = await rejects(
    messaging.removeMembers(
      { change: { conversationId: g.conversation?.id ?? "", userIds: ["c"], clientMsgId: "y" } },
      as("b"),
    ),
  );
  t.is(notCreator.code, Code.PermissionDenied);
  const dm = await messaging.createConversation(
    { conversation: { kind: ConversationKind.DIRECT, memberIds: ["bob"], clientMsgId: "z" } },
    as("alice"),
  );
  const grow = await rejects(
    messaging.addMembers(
      {
        change: { conversationId: dm.conversation?.id ?? "", userIds: ["carol"], clientMsgId: "w" },
      },
      as("alice"),
    ),
  );
  t.is(grow.code, Code.FailedPrecondition);
});

test("a send is announced on message.stored with every member as recipient", async (t) => {
  const { messaging, bus, as } = setup();
  const stored: MessageStored[] = [];
  let seen!: () => void;
  const got = new Promise<void>((r) => {
    seen = r;
  });
  await bus.subscribe({
    groupId: "probe",
    topics: ["message.stored"],
    fromBeginning: true,
    handler: async (batch) => {
      for (const r of batch) stored.push(fromBinary(MessageStoredSchema, r.value));
      if (stored.some((s) => s.message?.content.case === "text")) seen();
    },
  });
  const g = await messaging.createConversation(
    {
      conversation: { kind: ConversationKind.GROUP, memberIds: ["bob", "carol"], clientMsgId: "g" },
    },
    as("alice"),
  );
  const sent = await messaging.sendMessage(
    { draft: { conversationId: g.conversation?.id ?? "", clientMsgId: "m", text: "hello" } },
    as("bob"),
  );
  await got;
  const event = stored.find((s) => s.message?.content.case === "text");
  t.deepEqual(event?.message, sent.message);
  t.deepEqual([...(event?.recipientIds ?? [])].sort(), ["alice", "bob", "carol"]);
});

test("typing is relayed to the other members only", async (t) => {
  const { messaging, bus, as } = setup();
  const g = await messaging.createConversation(
    {
      conversation: { kind: ConversationKind.GROUP, memberIds: ["bob", "carol"], clientMsgId: "g" },
    },
    as("alice"),
  );
  let resolve!: (ids: string[]) => void;
  const recipients = new Promise<string[]>((r) => {
    resolve = r;
  });
  await bus.subscribe({
    groupId: "probe",
    topics: ["typing"],
    fromBeginning: true,
    handler: async (batch) =>
      resolve(fromBinary(TypingChangedSchema, batch[0]?.value ?? new Uint8Array()).recipientIds),
  });
  await messaging.setTyping(
    { typing: { conversationId: g.conversation?.id ?? "", active: true } },
    as("bob"),
  );
  t.deepEqual([...(await recipients)].sort(), ["alice", "carol"]);
});

test("routing puts a conversation's messages in every inbox in seq order, whatever order events come in", async (t) => {
  const { messaging, persistence, registry, channel, as } = setup();
  const dm = await messaging.createConversation(
    { conversation: { kind: ConversationKind.DIRECT, memberIds: ["bob"], clientMsgId: "d" } },
    as("alice"),
  );
  const conversationId = dm.conversation?.id ?? "";
  // Store five messages without routing them (as if every publish were slow or lost).
  const messages: Array<Message | undefined> = [];
  for (let i = 1; i <= 5; i++) {
    const r = await persistence.appendMessage({
      conversationId,
      senderId: "alice",
      clientMsgId: `m${i}`,
      content: { case: "text", value: `m${i}` },
    });
    messages.push(r.message);
  }
  await registry.register(
    { userId: "bob", deviceId: "d", sessionId: "s1", instanceId: "gw", connectedAtMs: 0 },
    60_000,
  );
  const delivered: string[] = [];
  await channel.listen("gw", (payload) => {
    for (const item of fromBinary(GatewayDeliverySchema, payload).items) {
      const frame = fromBinary(ServerFrameSchema, item.serverFrame);
      if (frame.kind.case === "deliveries") {
        for (const e of frame.kind.value.entries) {
          if (e.message?.content.case === "text")
            delivered.push(`${item.userId}:${e.seq}:${e.message.content.value}`);
        }
      }
    }
  });
  const router = new Router({
    region: "us-east-1",
    persistence,
    bus: { publish: async () => {} },
    fanout: new Fanout(registry, channel),
  });
  const ev = (i: number): MessageStored =>
    create(MessageStoredSchema, { message: messages[i - 1], recipientIds: ["alice", "bob"] });
  await router.route([ev(4)]); // 1..3 were never published: routed first, from the log
  await router.route([ev(2), ev(1)]); // late duplicates change nothing
  await router.route([ev(5), ev(4)]);
  await new Promise((r) => setImmediate(r));
  t.deepEqual(delivered, ["bob:1:m1", "bob:2:m2", "bob:3:m3", "bob:4:m4", "bob:5:m5"]);
  const inbox = await persistence.readInbox({ userId: "alice" });
  t.deepEqual(
    inbox.entries.map((e) => [e.seq, e.message?.seq]),
    [1n, 2n, 3n, 4n, 5n].map((s) => [s, s]),
  );
  t.is((await persistence.readRoutedSeq({ conversationId })).seq, 5n);
});

test("BatchSendMessages answers every send in order, a refusal only its own", async (t) => {
  const { messaging, as } = setup();
  const g = await messaging.createConversation(
    {
      conversation: { kind: ConversationKind.GROUP, memberIds: ["bob", "carol"], clientMsgId: "g" },
    },
    as("alice"),
  );
  const id = g.conversation?.id ?? "";
  const res = await messaging.batchSendMessages({
    items: [
      {
        actor: { userId: "bob", deviceId: "d1" },
        draft: { conversationId: id, clientMsgId: "1", text: "a" },
      },
      {
        actor: { userId: "mallory", deviceId: "d1" },
        draft: { conversationId: id, clientMsgId: "2", text: "b" },
      },
      {
        actor: { userId: "carol", deviceId: "d1" },
        draft: { conversationId: "nope", clientMsgId: "3", text: "c" },
      },
      {
        actor: { userId: "carol", deviceId: "d1" },
        draft: { conversationId: id, clientMsgId: "4", text: "d" },
      },
      {
        actor: { userId: "bob", deviceId: "d1" },
        draft: { conversationId: id, clientMsgId: "1", text: "a" },
      },
    ],
  });
  const o = res.outcomes;
  t.is(o.length, 5);
  t.is(o[0]?.message?.senderId, "bob");
  t.truthy(o[1]?.error);
  t.is(o[1]?.message, undefined);
  t.truthy(o[2]?.error);
  t.is(o[3]?.message?.senderId, "carol");
  t.true((o[3]?.message?.seq ?? 0n) > (o[0]?.message?.seq ?? 0n));
  t.true(o[4]?.duplicate);
  t.deepEqual(o[4]?.message, o[0]?.message);
  // The history holds exactly the two sends that were accepted, after the group's first message.
  const h = await messaging.getHistory({ query: { conversationId: id, limit: 10 } }, as("alice"));
  t.deepEqual(
    (h.history?.messages ?? []).filter((m) => m.content.case === "text").map((m) => m.clientMsgId),
    ["1", "4"],
  );
});
