import test from "ava";
import { ChatClient } from "../../client/index.ts";
import { type ProcessRegion, startProcessRegion } from "../../dev/region.ts";
import { ErrorCode } from "../../gen/chat/v1/client_pb.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { missingRealBackend } from "../support/real-backends.ts";
import { within } from "../support/region.ts";

// A region as separate processes on the real local backends: DynamoDB Local, redis-server and
// librdkafka's mock Kafka, with two gateway and two messaging tasks.
const missing = missingRealBackend();

let region: ProcessRegion | undefined;
if (missing) {
  test.skip(`a region as separate processes: ${missing}`, () => {});
} else {
  test.before(async () => {
    region = await startProcessRegion({
      env: { SWEEP_INTERVAL_MS: "500", SWEEP_MIN_AGE_MS: "1000", KAFKA_SESSION_TIMEOUT_MS: "3000" },
    });
  });
  test.after.always(async () => {
    await region?.stop();
  });

  const client = (
    t: { teardown: (f: () => Promise<void>) => void },
    user: string,
    urls: string[],
    device = "phone",
  ) => {
    const r = region as ProcessRegion;
    const c = new ChatClient({
      url: urls,
      token: () => r.issuer.token(user),
      deviceId: device,
      reconnect: { initialMs: 100, maxMs: 1_000 },
      gapTimeoutMs: 500,
    });
    t.teardown(() => c.close());
    return c;
  };

  test.serial(
    "users on different gateway instances chat, and an offline user catches up",
    async (t) => {
      const r = region as ProcessRegion;
      const [gw1, gw2] = r.gatewayUrls as [string, string];
      const alice = client(t, "alice", [gw1, gw2]);
      const bob = client(t, "bob", [gw2, gw1]);
      const aliceSaw = new MessageRecorder(alice);
      const bobSaw = new MessageRecorder(bob);
      await alice.connect();
      await bob.connect();
      const group = await alice.createGroup("across", ["bob", "carol"]);
      await alice.send(group.id, "from gateway 1");
      await bob.send(group.id, "from gateway 2");
      await bobSaw.count(2, group.id, 15_000);
      await aliceSaw.count(2, group.id, 15_000);
      t.deepEqual(bobSaw.texts(group.id), ["from gateway 1", "from gateway 2"]);
      t.deepEqual(aliceSaw.texts(group.id), ["from gateway 1", "from gateway 2"]);

      const carol = client(t, "carol", [gw2]);
      const carolSaw = new MessageRecorder(carol);
      await carol.connect();
      await carolSaw.count(2, group.id, 15_000);
      t.deepEqual(carolSaw.texts(group.id), ["from gateway 1", "from gateway 2"]);
    },
  );

  test.serial(
    "killing a gateway mid-conversation loses nothing: its clients resume on the other",
    async (t) => {
      const r = region as ProcessRegion;
      const [gw1, gw2] = r.gatewayUrls as [string, string];
      const dana = client(t, "dana", [gw1, gw2]);
      const eli = client(t, "eli", [gw2, gw1]);
      const danaSaw = new MessageRecorder(dana);
      await dana.connect();
      await eli.connect();
      const dm = await eli.createDirect("dana");
      for (let i = 0; i < 5; i++) await eli.send(dm.id, `before ${i}`);
      await danaSaw.count(5, dm.id, 15_000);

      const moved = dana.once("connected", (w) => w.sessionId !== "");
      await r.process("gateway-1").kill();
      // eli keeps writing while dana's gateway is gone.
      const sending = (async () => {
        for (let i = 0; i < 10; i++) await eli.send(dm.id, `during ${i}`);
      })();
      await within(moved, 20_000, "dana reconnecting to gateway 2");
      await sending;
      await eli.send(dm.id, "after");
      await danaSaw.count(16, dm.id, 20_000);
      t.deepEqual(danaSaw.texts(dm.id), [
        ...Array.from({ length: 5 }, (_, i) => `before ${i}`),
        ...Array.from({ length: 10 }, (_, i) => `during ${i}`),
        "after",
      ]);
      await r.process("gateway-1").start();
    },
  );

  test.serial(
    "both messaging tasks route; when one is killed the other takes over its partitions",
    async (t) => {
      const r = region as ProcessRegion;
      const [gw1, gw2] = r.gatewayUrls as [string, string];
      const held = () =>
        Promise.all(["messaging-1", "messaging-2"].map((n) => routingPartitions(r.process(n).url)));
      // A task may have to start its consumer again (see KafkaBus) before the group settles.
      let shares = await held();
      const deadline = Date.now() + 30_000;
      while (!shares.every((n) => n > 0) && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 200));
        shares = await held();
      }
      t.true(
        shares.every((n) => n > 0),
        `both tasks hold routing partitions: ${JSON.stringify(shares)}`,
      );
      const total = shares.reduce((a, b) => a + b, 0);

      const killedAt = Date.now();
      await r.process("messaging-2").kill();
      const survivor = r.process("messaging-1").url;
      let tookMs = -1;
      while (Date.now() - killedAt < 30_000) {
        if ((await routingPartitions(survivor)) === total) {
          tookMs = Date.now() - killedAt;
          break;
        }
        await new Promise((res) => setTimeout(res, 100));
      }
      t.true(tookMs >= 0, `the survivor took all ${total} routing partitions`);
      t.log(`the survivor held every routing partition ${tookMs} ms after the kill`);

      // Conversations spread over the partitions: every one of them is routed by the survivor.
      const lee = client(t, "lee", [gw1, gw2]);
      const leeSaw = new MessageRecorder(lee);
      await lee.connect();
      const senders = ["mo", "nia", "oz", "pam", "quin", "rex"].map((u) =>
        client(t, u, [gw2, gw1]),
      );
      await Promise.all(senders.map((c) => c.connect()));
      const dms = await Promise.all(senders.map((c) => c.createDirect("lee")));
      await Promise.all(
        senders.map((c, i) => c.send((dms[i] as { id: string }).id, `to lee ${i}`)),
      );
      for (const [i, dm] of dms.entries()) {
        await leeSaw.count(1, dm.id, 20_000);
        t.deepEqual(leeSaw.texts(dm.id), [`to lee ${i}`]);
      }
      await r.process("messaging-2").start();
    },
  );

  test.serial(
    "a messaging task killed between persisting and publishing loses nothing",
    async (t) => {
      const r = region as ProcessRegion;
      const [gw1, gw2] = r.gatewayUrls as [string, string];
      const messaging = r.process("messaging-1");
      await messaging.kill();
      await messaging.start({ FAULT_CRASH_AFTER_APPEND: "doomed" });
      const gus = client(t, "gus", [gw2]);
      const gusSaw = new MessageRecorder(gus);
      await gus.connect();
      // fay speaks the protocol by hand, so nothing retries on her behalf.
      const fay = await RawSocket.open(t, { wsUrl: gw1 });
      await fay.hello({ token: (u) => r.issuer.token(u) }, "fay");
      fay.keepAlive(1_000);
      fay.send(1, {
        case: "createConversation",
        value: { kind: 1, memberIds: ["gus"], clientMsgId: "dm" },
      });
      const dm = await fay.answer(1, 20_000);
      const conversationId = dm.kind.case === "conversation" ? dm.kind.value.id : "";
      fay.send(2, { case: "send", value: { conversationId, clientMsgId: "once", text: "doomed" } });
      const answer = await fay.answer(2, 20_000);
      // The task died after persisting, before publishing: the client gets no acknowledgement.
      t.is(answer.kind.case, "error");
      if (answer.kind.case === "error") {
        t.is(answer.kind.value.code, ErrorCode.UNAVAILABLE);
        t.true(answer.kind.value.retryable);
      }
      await messaging.start();
      // Nobody retries: the sweeper republishes the orphan and routing delivers it.
      await gusSaw.count(1, conversationId, 30_000);
      fay.send(3, { case: "send", value: { conversationId, clientMsgId: "next", text: "next" } });
      await fay.answer(3, 20_000);
      await gusSaw.count(2, conversationId, 20_000);
      t.deepEqual(gusSaw.texts(conversationId), ["doomed", "next"]);
    },
  );

  test.serial(
    "the SDK's retry of an interrupted send gets the stored message, delivered once",
    async (t) => {
      const r = region as ProcessRegion;
      const [gw1, gw2] = r.gatewayUrls as [string, string];
      const messaging = r.process("messaging-1");
      await messaging.kill();
      await messaging.start({ FAULT_CRASH_AFTER_APPEND: "retried" });
      const hal = client(t, "hal", [gw1]);
      const ida = client(t, "ida", [gw2]);
      const idaSaw = new MessageRecorder(ida);
      await hal.connect();
      await ida.connect();
      const dm = await hal.createDirect("ida");
      const sending = hal.send(dm.id, "retried");
      await new Promise((res) => setTimeout(res, 1_000));
      await messaging.start();
      const stored = await within(sending, 30_000, "the retried send");
      t.is(stored.seq, 1n);
      await hal.send(dm.id, "barrier");
      await idaSaw.count(2, dm.id, 20_000);
      t.deepEqual(idaSaw.texts(dm.id), ["retried", "barrier"]);
    },
  );

  test.serial(
    "SIGTERM drains a gateway within its drain window; its clients move to the other",
    async (t) => {
      const r = region as ProcessRegion;
      const [gw1, gw2] = r.gatewayUrls as [string, string];
      const jo = client(t, "jo", [gw2, gw1]);
      const kim = client(t, "kim", [gw1, gw2]);
      const joSaw = new MessageRecorder(jo);
      await jo.connect();
      await kim.connect();
      const dm = await kim.createDirect("jo");
      await kim.send(dm.id, "before the drain");
      await joSaw.count(1, dm.id, 15_000);
      const told = jo.once("disconnected", (d) => d.code === 1012);
      const moved = jo.once("connected");
      const gateway = r.process("gateway-2");
      const started = Date.now();
      await gateway.stop();
      const tookMs = Date.now() - started;
      const [info] = await within(told, 5_000, "the drain's close");
      t.is(info.code, 1012);
      t.true(tookMs < 20_000, `the gateway exited ${tookMs} ms after SIGTERM, within DRAIN_MS`);
      await within(moved, 15_000, "jo reconnecting to gateway 1");
      await kim.send(dm.id, "after the drain");
      await joSaw.count(2, dm.id, 15_000);
      t.deepEqual(joSaw.texts(dm.id), ["before the drain", "after the drain"]);
    },
  );
}

/** routingPartitions reads from a messaging task's /metrics how many routing partitions it holds. */
async function routingPartitions(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let held = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("chat_bus_consumer_partitions{")) continue;
    if (!line.includes('group="messaging-routing"') || !line.includes('state="consuming"'))
      continue;
    held += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return held;
}
