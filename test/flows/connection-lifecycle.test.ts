import { fromBinary } from "@bufbuild/protobuf";
import test from "ava";
import { ErrorCode, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import { GatewayDeliverySchema } from "../../gen/chat/v1/events_pb.ts";
import { MemoryDeliveryChannel } from "../../services/shared/adapters/memory/memory-delivery-channel.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, operatorCall, within, withRegion } from "../support/region.ts";

/** LossyChannel drops the live deliveries a test chooses, as a restarting channel would. */
class LossyChannel extends MemoryDeliveryChannel {
  drop: (texts: string[]) => boolean = () => false;
  dropped = 0;
  override async send(instanceId: string, payload: Uint8Array) {
    const texts: string[] = [];
    for (const item of fromBinary(GatewayDeliverySchema, payload).items) {
      const f = fromBinary(ServerFrameSchema, item.serverFrame);
      if (f.kind.case === "deliveries" && !f.kind.value.replay) {
        for (const e of f.kind.value.entries) {
          if (e.message?.content.case === "text") texts.push(e.message.content.value);
        }
      }
    }
    if (texts.length > 0 && this.drop(texts)) {
      this.dropped++;
      return;
    }
    return super.send(instanceId, payload);
  }
}

test("a live delivery lost on the last hop is noticed as an inbox gap and filled by a sync", async (t) => {
  const channel = new LossyChannel();
  const region = await withRegion(t, { channel });
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob");
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");
  channel.drop = (texts) => texts.includes("lost") && !texts.includes("next");

  await alice.send(dm.id, "first");
  await alice.send(dm.id, "lost");
  await alice.send(dm.id, "next");
  await bobSaw.count(3, dm.id);
  t.true(channel.dropped >= 1, "the delivery to bob really was dropped");
  t.deepEqual(bobSaw.texts(dm.id), ["first", "lost", "next"], "in order, once each");
});

test("the last live delivery of a burst, lost on the last hop, arrives by the periodic sync", async (t) => {
  const channel = new LossyChannel();
  const region = await withRegion(t, { channel });
  const alice = await connect(t, region, "alice");
  const bob = await connect(t, region, "bob", "phone", { syncIntervalMs: 1_000 });
  const bobSaw = new MessageRecorder(bob);
  const dm = await alice.createDirect("bob");
  channel.drop = (texts) => texts.includes("last");

  await alice.send(dm.id, "first");
  await alice.send(dm.id, "last");
  // Nothing follows it: no later entry shows bob's device the hole.
  await bobSaw.count(2, dm.id, 5_000);
  t.true(channel.dropped >= 1, "the delivery to bob really was dropped");
  t.deepEqual(bobSaw.texts(dm.id), ["first", "last"]);
});

test("the server closes connections that stop sending heartbeats", async (t) => {
  const region = await withRegion(t, { env: { HEARTBEAT_INTERVAL_MS: "200" } });
  // The hello must arrive within one interval of opening: sign the token beforehand.
  const token = await region.token("quiet");
  const raw = await RawSocket.open(t, region);
  const welcome = await raw.hello({ token: async () => token }, "quiet");
  t.is(welcome.kind.case === "welcome" ? welcome.kind.value.heartbeatIntervalMs : 0, 200);
  await t.throwsAsync(
    raw.next(() => false, 5_000),
    { message: /socket closed/ },
  );
});

test("a connection whose token expires is told to reconnect with a fresh token (4401)", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region);
  raw.send(1, {
    case: "hello",
    // exp is whole seconds after a whole-second iat: 2 s leaves at least 1 s to say welcome.
    value: { token: await region.issuer.token("brief", 2), deviceId: "d" },
  });
  await raw.answer(1);
  const goAway = await raw.next((f) => f.kind.case === "goAway", 5_000);
  t.regex(goAway.kind.case === "goAway" ? goAway.kind.value.reason : "", /token expired/);
  await t.throwsAsync(
    raw.next(() => false, 5_000),
    { message: /socket closed \(4401/ },
  );
});

test("a client sending too fast is slowed down with a retryable error", async (t) => {
  const region = await withRegion(t, { env: { FRAMES_PER_SECOND: "5" } });
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "chatty");
  for (let i = 0; i < 30; i++) raw.send(100 + i, { case: "ping", value: { nonce: BigInt(i) } });
  const err = await raw.next((f) => f.kind.case === "error");
  if (err.kind.case !== "error") return t.fail();
  t.is(err.kind.value.code, ErrorCode.RESOURCE_EXHAUSTED);
  t.true(err.kind.value.retryable);
  t.true(err.requestId >= 100, "answered on the refused request's id, which then fails at once");
  t.is(raw.closed, undefined, "the connection stays open");
});

test("the SDK sends a request refused for rate again, and it succeeds", async (t) => {
  const region = await withRegion(t, { env: { FRAMES_PER_SECOND: "5" } });
  const client = await connect(t, region, "hasty");
  const dm = await client.createDirect("calm");
  // Twenty requests at once: beyond the burst of ten, each is refused once or more, then
  // answered when the SDK sends it again.
  const pages = await Promise.all(Array.from({ length: 20 }, () => client.history(dm.id)));
  t.is(pages.length, 20);
});

test("operators list a user's sessions on a gateway and disconnect one device", async (t) => {
  const region = await withRegion(t);
  await connect(t, region, "olga", "phone");
  const laptop = await connect(t, region, "olga", "laptop");
  const call = async (method: "ListSessions" | "Disconnect", body: unknown) =>
    (await operatorCall(region, method, body)) as {
      sessions: Array<{ deviceId: string; encoding: string }>;
    } & Record<string, unknown>;
  const listed = await call("ListSessions", { userId: "olga" });
  t.deepEqual(listed.sessions.map((s: { deviceId: string }) => s.deviceId).sort(), [
    "laptop",
    "phone",
  ]);
  t.true(listed.sessions.every((s: { encoding: string }) => s.encoding === "proto"));
  const dropped = laptop.once("disconnected");
  t.deepEqual(
    await call("Disconnect", { userId: "olga", deviceId: "laptop", reason: "lost device" }),
    { closed: 1 },
  );
  const [info] = await within(dropped, 5_000, "the laptop's disconnect");
  t.is(info.code, 4000);
  t.is(info.reason, "lost device");
});

test("a sync request is answered by a sync_state carrying its request id", async (t) => {
  const region = await withRegion(t);
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "syncer");
  const afterHello = await raw.next((f) => f.kind.case === "syncState");
  t.is(afterHello.requestId, 0, "the replay after a hello answers no request");
  raw.send(41, { case: "sync", value: {} });
  const answer = await raw.answer(41);
  t.is(answer.kind.case, "syncState");
});

test("the public port carries /ws and /healthz only; the operator API wants an operator token", async (t) => {
  const region = await withRegion(t);
  await connect(t, region, "carol");
  const post = (base: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/chat.v1.GatewayService/Disconnect`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ userId: "carol" }),
    });
  // The public port: no operator API, no metrics, no reflection.
  t.is((await post(region.urls.gateway)).status, 404);
  t.is((await fetch(`${region.urls.gateway}/metrics`)).status, 404);
  const reflect = await fetch(
    `${region.urls.gateway}/grpc.reflection.v1.ServerReflection/ServerReflectionInfo`,
    { method: "POST", headers: { "content-type": "application/json" }, body: "{}" },
  );
  t.is(reflect.status, 404);
  t.is((await fetch(`${region.urls.gateway}/healthz`)).status, 200);

  // The admin listener: no token, a user's chat token, a token for another audience: refused.
  const admin = region.urls.gatewayAdmin;
  for (const [headers, why] of [
    [{}, /operator credential required/],
    [{ authorization: `Bearer ${await region.token("carol")}` }, /operator token refused/],
    [{ authorization: "Bearer not-a-jwt" }, /operator token refused/],
  ] as const) {
    const res = await post(admin, headers);
    t.is(res.status, 401);
    t.regex(((await res.json()) as { message: string }).message, why);
  }
  t.is((await fetch(`${admin}/metrics`)).status, 200);
  // With an operator token it works.
  t.deepEqual(await operatorCall(region, "Disconnect", { userId: "carol" }), { closed: 1 });
});
