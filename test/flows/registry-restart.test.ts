import test from "ava";
import { Redis } from "ioredis";
import { ChatClient } from "../../client/index.ts";
import { requireProgram } from "../../dev/backends/processes.ts";
import { type RedisServer, startRedis } from "../../dev/backends/redis.ts";
import { MessageRecorder } from "../support/inbox-recorder.ts";
import { withRegion } from "../support/region.ts";

// The session registry and delivery channel on a real redis-server that restarts empty (as an
// ElastiCache failover or a node replacement does) while devices stay connected and idle.

const redis = requireProgram("redis-server", "apt-get install redis-server");
if (!redis.available) {
  test.skip(`a Redis restart under connected devices: ${redis.why}`, () => {});
} else {
  let server: RedisServer | undefined;
  test.before(async () => {
    server = await startRedis();
  });
  test.after.always(async () => {
    await server?.stop();
  });

  test("after Redis restarts empty, devices connected all along get the next message at once", async (t) => {
    const r = server as RedisServer;
    // Sessions are refreshed every 20 s (a third of the TTL); what this test sees must not
    // depend on that refresh, nor on the SDK's periodic sync, which is off.
    const region = await withRegion(t, {
      env: { CHAT_REGISTRY: "redis", REDIS_URL: r.url, SESSION_TTL_MS: "60000" },
    });
    const open = (user: string) => {
      const c = new ChatClient({
        url: region.wsUrl,
        token: () => region.token(user),
        deviceId: "phone",
        syncIntervalMs: 0,
      });
      t.teardown(() => c.close());
      return c;
    };
    const alice = open("alice");
    const bob = open("bob");
    const bobSaw = new MessageRecorder(bob);
    await alice.connect();
    await bob.connect();
    const dm = await alice.createDirect("bob");
    await alice.send(dm.id, "before");
    await bobSaw.count(1, dm.id, 10_000);

    await r.restart();
    // The gateway registers its sessions again as soon as its connection is back.
    const peek = new Redis(r.url, { maxRetriesPerRequest: 1 });
    t.teardown(() => peek.disconnect());
    const deadline = Date.now() + 10_000;
    let keys = 0;
    while (keys === 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
      keys = (await peek.keys("*sessions:bob").catch(() => [])).length;
    }
    t.true(keys > 0, "bob's session is registered again well before the 20 s refresh");

    await alice.send(dm.id, "after");
    await bobSaw.count(2, dm.id, 10_000);
    t.deepEqual(bobSaw.texts(dm.id), ["before", "after"]);
  });
}
