import test from "ava";
import { ChatClient } from "../../client/index.ts";
import { type ProcessRegionHandle, startProcessRegions } from "../../dev/regions/processes.ts";
import type { Regions } from "../../dev/regions/regions.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { missingRealBackend } from "../support/real-backends.ts";
import { within } from "../support/region.ts";
import { regionList, TEST_ENV } from "../support/regions.ts";

// Two regions as ECS runs them: every service its own process, each region on its own
// DynamoDB Local (on disk), redis-server and mock Kafka, with the DynamoDB Streams table
// replicator and the Kafka-to-Kafka topic mirror between them.
const missing = missingRealBackend();

let regions: Regions | undefined;
if (missing) {
  test.skip(`two regions as separate processes: ${missing}`, () => {});
} else {
  test.before(async () => {
    regions = await startProcessRegions({
      tasks: { gateways: 1, messaging: 1 },
      env: { ...TEST_ENV, KAFKA_SESSION_TIMEOUT_MS: "3000", SESSION_TTL_MS: "6000" },
    });
  });
  test.after.always(async () => {
    await regions?.stop();
  });

  test.serial(
    "a region's processes are SIGKILLed: its clients fail over, nothing acked is lost, and it comes back with its data",
    async (t) => {
      const r = regions as Regions;
      const alice = new ChatClient({
        regions: regionList(r),
        token: () => r.token("alice"),
        deviceId: "phone",
        reconnect: { initialMs: 100, maxMs: 1_000 },
        gapTimeoutMs: 500,
        pongTimeoutMs: 2_000,
        ackTimeoutMs: 2_000,
      });
      t.teardown(() => alice.close());
      await alice.connect();
      const home = alice.region;
      const other = r.regions.find((x) => x.name !== home) as ProcessRegionHandle;
      const bob = new ChatClient({
        url: other.gatewayUrls[0] as string,
        token: () => r.token("bob"),
        deviceId: "phone",
        reconnect: { initialMs: 100, maxMs: 1_000 },
        gapTimeoutMs: 500,
      });
      t.teardown(() => bob.close());
      const bobSaw = new MessageRecorder(bob);
      await bob.connect();

      const dm = await alice.createDirect("bob");
      await alice.send(dm.id, "before 0");
      await bobSaw.count(1, dm.id, 20_000);
      const reply = await bob.send(dm.id, "reply from the other region");
      t.is(reply.originRegion, other.name);
      await alice.send(dm.id, "before 1");
      await bobSaw.count(3, dm.id, 20_000);
      await r.converged();

      const moved = alice.once("region", (x) => x.from === home);
      const killedAt = Date.now();
      await r.region(home).kill();
      const acked: string[] = [];
      for (let i = 0; i < 5; i++) {
        await alice.send(dm.id, `during ${i}`);
        acked.push(`during ${i}`);
      }
      await within(moved, 30_000, "alice failing over");
      t.log(
        `alice's sends were acknowledged in ${other.name} ${Date.now() - killedAt} ms after the kill`,
      );
      const expected = ["before 0", "reply from the other region", "before 1", ...acked];
      await bobSaw.count(expected.length, dm.id, 30_000);
      t.deepEqual(bobSaw.texts(dm.id), expected);

      await r.region(home).start();
      await r.converged(90_000);
      // The restarted region kept its table: its history has everything, once, in one order.
      const reader = new ChatClient({
        url: r.region(home).gatewayUrls[0] as string,
        token: () => r.token("bob"),
        deviceId: "reader",
      });
      t.teardown(() => reader.close());
      await reader.connect();
      const history = async (c: ChatClient) =>
        (await c.history(dm.id, { limit: 100 })).messages.map((m) =>
          m.content.case === "text" ? m.content.value : "",
        );
      t.deepEqual(await history(reader), expected);
      t.deepEqual(await history(bob), expected);
    },
  );

  test.serial(
    "a region whose Kafka stops answering turns unhealthy and sends its clients away; it recovers",
    async (t) => {
      const r = regions as Regions;
      const carol = new ChatClient({
        regions: regionList(r),
        token: () => r.token("carol"),
        deviceId: "phone",
        reconnect: { initialMs: 100, maxMs: 1_000 },
      });
      t.teardown(() => carol.close());
      await carol.connect();
      const home = r.region(carol.region) as ProcessRegionHandle;
      const health = async () => {
        const res = await fetch(`${home.services["gateway-1"]}/healthz`);
        return { status: res.status, body: await res.text() };
      };
      t.is((await health()).status, 200);
      const left = carol.once("region", (x) => x.from === home.name);
      await home.backends.busDown(true);
      await within(left, 30_000, "carol sent to the other region");
      const sick = await health();
      t.is(sick.status, 503);
      t.regex(sick.body, /delivery canary/);
      await home.backends.busDown(false);
      const deadline = Date.now() + 60_000;
      while ((await health()).status !== 200) {
        if (Date.now() > deadline) throw new Error(`still ${JSON.stringify(await health())}`);
        await new Promise((res) => setTimeout(res, 250));
      }
      t.pass("healthy again once its canaries come back");
    },
  );
}
