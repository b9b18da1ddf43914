import { create, fromBinary } from "@bufbuild/protobuf";
import test from "ava";
import { ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import { GatewayDeliverySchema, InboxAppendedSchema } from "../../gen/chat/v1/events_pb.ts";
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { type InboxEntry, PushPlatform, ReceiptKind } from "../../gen/chat/v1/types_pb.ts";
import type {
  PushNote,
  PushOutcome,
  PushProvider,
  PushTarget,
} from "../../services/notification/push/push-provider.ts";
import { type AppendedEvent, PushScheduler } from "../../services/notification/push-scheduler.ts";
import { Replayer } from "../../services/notification/replayer.ts";
import {
  build as buildPersistence,
  PERSISTENCE_CALLERS,
} from "../../services/persistence/server.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryDeliveryChannel } from "../../services/shared/adapters/memory/memory-delivery-channel.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { MemorySessionRegistry } from "../../services/shared/adapters/memory/memory-session-registry.ts";
import { Fanout } from "../../services/shared/fanout.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { createMetrics } from "../../services/shared/metrics.ts";
import { RetryLater } from "../../services/shared/ports/bus.ts";
import type { ServiceApp } from "../../services/shared/service-app.ts";
import { inMemoryClient, TEST_PEERS } from "../support/in-memory.ts";

function persistence() {
  const app = buildPersistence({
    peers: TEST_PEERS,
    store: new MemoryChatStore("us-east-1"),
    inbox: new MemoryInboxStore("us-east-1"),
    log: silentLogger,
    metrics: createMetrics("p", { processMetrics: false }),
  });
  return asNotification(app);
}

/**
 * asNotification is a persistence client that calls as notification does, except for what
 * only messaging may do (appending messages and inbox entries), which tests use to set up.
 */
function asNotification(app: ServiceApp) {
  const notification = inMemoryClient(app, PersistenceService, "notification");
  const messaging = inMemoryClient(app, PersistenceService, "messaging");
  const allowed = PERSISTENCE_CALLERS.notification ?? (() => false);
  return new Proxy(notification, {
    get: (target, name: string) => {
      const method = name.charAt(0).toUpperCase() + name.slice(1);
      return (allowed(method) ? target : messaging)[name as keyof typeof target];
    },
  });
}

/** RecordingPush is a PushProvider that remembers what it was asked to send. */
class RecordingPush implements PushProvider {
  readonly platforms = [PushPlatform.FCM, PushPlatform.APNS];
  readonly sent: Array<{ target: PushTarget; note: PushNote }> = [];
  outcome: PushOutcome = "sent";
  async send(target: PushTarget, note: PushNote) {
    this.sent.push({ target, note });
    return this.outcome;
  }
}

async function inboxFor(
  p: ReturnType<typeof persistence>,
  userId: string,
  texts: string[],
  senderId = "alice",
) {
  const out: InboxEntry[] = [];
  for (const [i, text] of texts.entries()) {
    const { message } = await p.appendMessage({
      conversationId: "c1",
      senderId,
      clientMsgId: `${senderId}-${i}-${text}`,
      content: { case: "text", value: text },
    });
    const { entries } = await p.appendInbox({ items: [{ userId, message }] });
    out.push(...entries);
  }
  return out;
}

/** appended makes the inbox.appended events of a user's entries, appended at `atMs`. */
function appended(userId: string, entries: InboxEntry[], atMs: number): AppendedEvent[] {
  return entries.map((entry) => ({
    event: create(InboxAppendedSchema, { userId, entry }),
    appendedAtMs: atMs,
  }));
}

test("under steady traffic the due part of a batch is pushed, the rest waits for its time", async (t) => {
  const p = persistence();
  const push = new RecordingPush();
  await p.savePushToken({
    userId: "bob",
    token: { deviceId: "phone", platform: PushPlatform.FCM, token: "tok" },
  });
  const entries = await inboxFor(p, "bob", ["old", "new"]);
  const now = 1_000_000;
  const scheduler = new PushScheduler({
    persistence: p,
    provider: push,
    log: silentLogger,
    delayMs: 10_000,
    now: () => now,
  });
  // The first append is due, the second came 2 s ago: the first is pushed now, and the bus
  // is told it is done and to come back for the second in 8 s.
  const batch = [
    ...appended("bob", entries.slice(0, 1), now - 30_000),
    ...appended("bob", entries.slice(1), now - 2_000),
  ];
  const later = await scheduler.handle(batch).catch((e: Error) => e);
  t.true(later instanceof RetryLater);
  t.is((later as RetryLater).handled, 1);
  t.is((later as RetryLater).delayMs, 8_000);
  // One due in a few milliseconds is still looked at a second later, with whatever else is due
  // by then, not once per record.
  const soon = await scheduler
    .handle(appended("bob", entries.slice(1), now - 9_995))
    .catch((e: Error) => e);
  t.is((soon as RetryLater).delayMs, 1_000);
  t.is((soon as RetryLater).handled, 0);
  t.deepEqual(
    push.sent.map((s) => s.note.body),
    ["old"],
  );
});

test("a message no device acknowledged in time is pushed once per conversation", async (t) => {
  const p = persistence();
  const push = new RecordingPush();
  await p.savePushToken({
    userId: "bob",
    token: { deviceId: "phone", platform: PushPlatform.FCM, token: "tok-1" },
  });
  await p.savePushToken({
    userId: "bob",
    token: { deviceId: "web", platform: PushPlatform.WEBHOOK, token: "w" },
  });
  const entries = await inboxFor(p, "bob", ["one", "two"]);
  const scheduler = new PushScheduler({
    persistence: p,
    provider: push,
    log: silentLogger,
    delayMs: 0,
  });
  const sent = await scheduler.handle(appended("bob", entries, Date.now()));
  t.is(sent, 1);
  t.deepEqual(
    push.sent.map((s) => [s.target.token, s.note.body, s.note.collapseKey]),
    [["tok-1", "2 new messages", "c1"]],
  );
  t.is(push.sent[0]?.note.title, "alice");
});

test("nothing is pushed before the delay, for messages acknowledged during it, or to their sender", async (t) => {
  const p = persistence();
  const push = new RecordingPush();
  await p.savePushToken({
    userId: "bob",
    token: { deviceId: "phone", platform: PushPlatform.APNS, token: "tok" },
  });
  await p.savePushToken({
    userId: "alice",
    token: { deviceId: "phone", platform: PushPlatform.APNS, token: "a" },
  });
  const entries = await inboxFor(p, "bob", ["seen"]);
  const own = await inboxFor(p, "alice", ["mine"]);
  const scheduler = new PushScheduler({
    persistence: p,
    provider: push,
    log: silentLogger,
    delayMs: 60_000,
  });
  const events = (at: number) => [...appended("bob", entries, at), ...appended("alice", own, at)];
  // Not due yet: the batch goes back to the bus, to come again when it is.
  const early = await scheduler.handle(events(Date.now())).catch((e: Error) => e);
  t.true(early instanceof RetryLater);
  t.true((early as RetryLater).delayMs > 59_000);
  t.is((early as RetryLater).handled, 0);
  // Bob's device acknowledges meanwhile.
  await p.writeReceipt({
    receipt: {
      conversationId: "c1",
      userId: "bob",
      kind: ReceiptKind.DELIVERED,
      upTo: { seqs: { "us-east-1": 1n } },
    },
  });
  t.is(await scheduler.handle(events(Date.now() - 60_000)), 0);
  t.deepEqual(push.sent, []);
});

test("a dead token is forgotten", async (t) => {
  const p = persistence();
  const push = new RecordingPush();
  push.outcome = "invalid-token";
  await p.savePushToken({
    userId: "bob",
    token: { deviceId: "old", platform: PushPlatform.FCM, token: "dead" },
  });
  const entries = await inboxFor(p, "bob", ["hello"]);
  const scheduler = new PushScheduler({
    persistence: p,
    provider: push,
    log: silentLogger,
    delayMs: 0,
  });
  await scheduler.handle(appended("bob", entries, Date.now()));
  t.deepEqual((await p.listPushTokens({ userId: "bob" })).tokens, []);
});

test("a replay skips what expired before the device got it, and says so", async (t) => {
  let now = 1_000_000;
  const app = buildPersistence({
    peers: TEST_PEERS,
    store: new MemoryChatStore("us-east-1"),
    inbox: new MemoryInboxStore("us-east-1", { retentionMs: 60_000, now: () => now }),
    log: silentLogger,
    metrics: createMetrics("p", { processMetrics: false }),
  });
  const p = asNotification(app);
  await inboxFor(p, "bob", ["old1", "old2"]);
  now += 120_000;
  await inboxFor(p, "bob", ["new"]);
  const channel = new MemoryDeliveryChannel();
  const frames: string[] = [];
  await channel.listen("gw", (payload) => {
    for (const item of fromBinary(GatewayDeliverySchema, payload).items) {
      const f = fromBinary(ServerFrameSchema, item.serverFrame);
      if (f.kind.case === "deliveries") {
        for (const e of f.kind.value.entries) frames.push(`entry ${e.seq}`);
      } else if (f.kind.case === "syncState") {
        frames.push(
          `head ${f.kind.value.inboxHead?.seqs["us-east-1"]} expired ${f.kind.value.expired?.seqs["us-east-1"]}`,
        );
      }
    }
  });
  const replayer = new Replayer(p, new Fanout(new MemorySessionRegistry(), channel), 500);
  await replayer.replay({ userId: "bob", sessionId: "s", instanceId: "gw" }, undefined);
  await new Promise((r) => setImmediate(r));
  t.deepEqual(frames, ["entry 3", "head 3 expired 2"]);
});

test("a replay pages through the inbox after a vector, then reports the head", async (t) => {
  const p = persistence();
  const texts = Array.from({ length: 1_203 }, (_, i) => `m${i}`);
  const all = [];
  for (let i = 0; i < texts.length; i += 500) all.push(...texts.slice(i, i + 500));
  await inboxFor(p, "bob", all);
  const channel = new MemoryDeliveryChannel();
  const frames: Array<{
    kind: string;
    n: number;
    replay?: boolean;
    head?: bigint;
    session: string;
  }> = [];
  await channel.listen("gw", (payload) => {
    for (const item of fromBinary(GatewayDeliverySchema, payload).items) {
      const f = fromBinary(ServerFrameSchema, item.serverFrame);
      if (f.kind.case === "deliveries") {
        frames.push({
          kind: "deliveries",
          n: f.kind.value.entries.length,
          replay: f.kind.value.replay,
          session: item.sessionId,
        });
      } else if (f.kind.case === "syncState") {
        frames.push({
          kind: "sync",
          n: 0,
          head: f.kind.value.inboxHead?.seqs["us-east-1"],
          session: item.sessionId,
        });
      }
    }
  });
  const replayer = new Replayer(p, new Fanout(new MemorySessionRegistry(), channel), 500);
  const res = await replayer.replay(
    { userId: "bob", sessionId: "s1", instanceId: "gw" },
    { seqs: { "us-east-1": 3n }, $typeName: "chat.v1.VersionVector" },
  );
  await new Promise((r) => setImmediate(r));
  t.is(res.entries, 1_200);
  t.deepEqual(frames, [
    { kind: "deliveries", n: 500, replay: true, session: "s1" },
    { kind: "deliveries", n: 500, replay: true, session: "s1" },
    { kind: "deliveries", n: 200, replay: true, session: "s1" },
    { kind: "sync", n: 0, head: 1_203n, session: "s1" },
  ]);
});
