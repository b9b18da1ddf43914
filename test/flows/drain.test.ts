import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { RawSocket } from "../support/raw-socket.ts";
import { connect, within, withRegion } from "../support/region.ts";

test("a draining gateway finishes requests, tells clients to reconnect (go_away, 1012), refuses new ones", async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const region = await withRegion(t, {
    env: { DRAIN_MS: "10000" },
    hooks: { afterAppend: () => held },
  });
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "ann");
  raw.send(1, {
    case: "createConversation",
    value: { kind: 1, memberIds: ["ben"], clientMsgId: "d" },
  });
  const dm = await raw.answer(1);
  const conversationId = dm.kind.case === "conversation" ? dm.kind.value.id : "";
  raw.send(2, { case: "send", value: { conversationId, clientMsgId: "m", text: "in flight" } });
  const gateway = region.services.find((s) => s.app.name === "gateway");
  if (!gateway) throw new Error("no gateway");
  // Let the send reach messaging, then stop the gateway while it is still in flight.
  await new Promise((r) => setTimeout(r, 200));
  const stopping = gateway.stop();
  t.is(await upgradeStatus(region.urls.gateway), 503, "new connections are refused while draining");
  release();
  const answer = await raw.answer(2);
  t.is(answer.kind.case, "sendResult", "the request in flight was answered first");
  const goAway = await raw.next((f) => f.kind.case === "goAway");
  if (goAway.kind.case !== "goAway") return t.fail();
  t.regex(goAway.kind.value.reason, /restarting/);
  t.true(goAway.kind.value.reconnectAfterMs < 2_500, "a jittered hint within the drain window");
  await t.throwsAsync(
    raw.next(() => false, 5_000),
    { message: /socket closed \(1012/ },
  );
  await stopping;
});

test("services finish the requests in flight when they stop", async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  let reached!: () => void;
  const inFlight = new Promise<void>((r) => {
    reached = r;
  });
  const region = await withRegion(t, {
    hooks: {
      afterAppend: async (m) => {
        if (m.content.case === "text" && m.content.value === "slow") {
          reached();
          await held;
        }
      },
    },
  });
  const alice = await connect(t, region, "alice");
  const dm = await alice.createDirect("bob");
  const sending = alice.send(dm.id, "slow");
  await inFlight;
  const messaging = region.services.find((s) => s.app.name === "messaging");
  if (!messaging) throw new Error("no messaging");
  const stopping = messaging.stop(5_000);
  setTimeout(release, 300);
  const stored = await within(sending, 10_000, "the send in flight");
  t.is(stored.seq, 1n, "the request in flight was answered (so its event is on the bus)");
  await stopping;
});

/** upgradeStatus tries a WebSocket upgrade and returns the HTTP status it was answered with. */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/ws`, {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 101);
    });
    req.on("error", reject);
    req.end();
  });
}

test("a gateway drains as soon as ECS decides to stop its task, before the load balancer cuts its sockets", async (t) => {
  let desired = "RUNNING";
  const metadata = createServer((req, res) => {
    res.writeHead(req.url === "/task" ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify({ DesiredStatus: desired, KnownStatus: "RUNNING" }));
  });
  await new Promise<void>((r) => metadata.listen(0, "127.0.0.1", r));
  t.teardown(() => metadata.close());
  const region = await withRegion(t, {
    env: {
      ECS_CONTAINER_METADATA_URI_V4: `http://127.0.0.1:${(metadata.address() as AddressInfo).port}`,
    },
  });
  const raw = await RawSocket.open(t, region);
  await raw.hello(region, "ann");
  desired = "STOPPED";
  const goAway = await raw.next((f) => f.kind.case === "goAway", 10_000);
  t.is(goAway.kind.case, "goAway");
  await t.throwsAsync(
    raw.next(() => false, 5_000),
    { message: /socket closed \(1012/ },
  );
  const health = await fetch(`${region.urls.gateway}/healthz`);
  t.is(health.status, 503, "the task reports NOT_SERVING while it waits for SIGTERM");
});
