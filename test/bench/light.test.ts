import { once } from "node:events";
import type { AddressInfo } from "node:net";
import test from "ava";
import { WebSocketServer } from "ws";
import { closeClients, connectClients, type Generator } from "../../bench/load/clients.ts";
import { LightSocket } from "../../bench/load/light-socket.ts";
import { type Group, Load } from "../../bench/load/step.ts";
import { WireStats } from "../../bench/load/wire-stats.ts";
import { launchTarget, type TargetName } from "../../bench/targets/launch.ts";

// Behaviour only: each load generator drives a target through a short step, and every
// delivery of every send is counted, none lost, with the frames on the wire and the target's
// counters read. Timings belong to bench/results, never to assertions here.

async function oneStep(name: TargetName, generator: Generator) {
  const target = await launchTarget(name, {});
  try {
    const wire = new WireStats();
    const clients = await connectClients(
      target,
      Array.from({ length: 8 }, (_, i) => `u${i}`),
      { generator, wire },
    );
    const groups: Group[] = [];
    for (let i = 0; i < clients.length; i += 4) {
      const [owner, ...others] = clients.slice(i, i + 4);
      if (!owner) continue;
      groups.push({
        conversationId: await owner.createGroup(others.map((c) => c.userId)),
        members: [owner, ...others],
      });
    }
    const load = new Load(groups, 100, wire);
    const step = await load.step(target, {
      sendsPerSecond: 20,
      warmupMs: 0,
      measureMs: 1_000,
      drainMs: 20_000,
    });
    await closeClients(clients);
    return step;
  } finally {
    await target.stop();
  }
}

for (const [name, generator] of [
  ["raw-ws", "light"],
  ["socket.io", "light"],
  ["raw-ws", "sdk"],
  ["connect-chat", "light"],
] as const) {
  test(`the ${generator} generator counts every delivery of ${name}`, async (t) => {
    t.timeout(120_000);
    const s = await oneStep(name, generator);
    t.true(s.work.sends > 0, "sends were issued in the window");
    t.is(s.sendErrors, 0);
    t.is(s.disconnects, 0);
    t.is(s.undelivered, 0, "every member got every message");
    // Each send reaches its 4 members; every one of those deliveries was timed.
    t.is(s.delivery.count, s.work.sends * 4);
    t.is(s.ack.count, s.work.sends);
    const byKind = s.work.wire.framesInByKind;
    const deliveries = (byKind.deliveries ?? 0) + (byKind.message ?? 0);
    // Frames, not deliveries: a busy gateway puts several messages in one `deliveries` frame.
    t.true(deliveries > 0, "delivery frames were counted");
    t.true(s.work.wire.bytesIn > 0 && s.work.wire.framesOut >= s.work.sends);
    t.true(s.loadCpuMicrosPerDelivery > 0, "the generator's CPU per delivery was measured");
    t.truthy(s.work.processes.target, "the target's collections and allocation were read");
    t.true((s.work.processes.target?.allocatedBytes ?? 0) > 0);
    if (name === "connect-chat") {
      t.is(s.work.countersError, undefined);
      t.true(
        Object.keys(s.work.rpcs).some((m) => m.startsWith("MessagingService/")),
        "RPCs were counted",
      );
      t.true((s.work.busPublished["message.stored"] ?? 0) > 0, "bus records were counted");
      // The SDK acknowledges deliveries, and so does the light client: receipts follow.
      t.true((byKind.receipts ?? 0) + (byKind.receipt ?? 0) > 0, "acks produced receipts");
    }
  });
}

test("LightSocket reads what a ws server writes, however it is framed, and is read back", async (t) => {
  const server = new WebSocketServer({ port: 0, host: "127.0.0.1", perMessageDeflate: false });
  t.teardown(() => server.close());
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const big = Buffer.alloc(70_000, 7); // a 64-bit length
  const echoed: string[] = [];
  server.on("connection", (ws, req) => {
    t.is(req.headers["sec-websocket-protocol"], "p1");
    ws.on("message", (data: Buffer, isBinary) =>
      echoed.push(`${isBinary ? "b" : "t"}:${data.length}`),
    );
    ws.send(Buffer.from([1, 2, 3]));
    ws.send("x".repeat(300)); // a 16-bit length
    ws.send(big);
    ws.send("frag", { fin: false });
    ws.send("ment", { fin: true });
    ws.ping("hi");
  });
  const got: string[] = [];
  const s = new LightSocket(`ws://127.0.0.1:${port}/path?q=1`, "p1");
  const all = new Promise<void>((resolve) => {
    s.onMessage = (data, text) => {
      got.push(text ? `t:${data.toString()}`.slice(0, 12) : `b:${data.length}`);
      if (got.length === 4) resolve();
    };
  });
  await s.opened;
  await all;
  t.deepEqual(got, ["b:3", `t:${"x".repeat(10)}`, "b:70000", "t:fragment"]);
  s.send(Buffer.alloc(200, 1));
  s.send("y".repeat(130_000));
  const closed = new Promise<void>((resolve) => {
    s.onClose = resolve;
  });
  while (echoed.length < 2) await new Promise((r) => setTimeout(r, 10));
  t.deepEqual(echoed, ["b:200", "t:130000"]);
  s.close();
  await closed;
});
