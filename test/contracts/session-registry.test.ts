import test from "ava";
import { requireProgram } from "../../dev/backends/processes.ts";
import { type RedisServer, startRedis } from "../../dev/backends/redis.ts";
import { MemorySessionRegistry } from "../../services/shared/adapters/memory/memory-session-registry.ts";
import { connectRedis } from "../../services/shared/adapters/redis/connect.ts";
import { RedisSessionRegistry } from "../../services/shared/adapters/redis/redis-session-registry.ts";
import { sessionRegistryContract } from "./session-registry.suite.ts";

sessionRegistryContract("MemorySessionRegistry", async () => ({
  registry: new MemorySessionRegistry(),
}));

const redis = requireProgram("redis-server", "apt-get install redis-server");
let server: RedisServer | undefined;
let prefixes = 0;
if (redis.available) {
  test.before(async () => {
    server = await startRedis();
  });
  test.after.always(async () => {
    await server?.stop();
  });
  sessionRegistryContract(
    "RedisSessionRegistry",
    async () => {
      const conn = connectRedis({ url: server?.url ?? "", keyPrefix: "" });
      return {
        registry: new RedisSessionRegistry(conn, { keyPrefix: `t${++prefixes}:`, owned: true }),
      };
    },
    { restartBackend: () => server?.restart() ?? Promise.resolve() },
  );
} else {
  test.skip(`RedisSessionRegistry: ${redis.why}`, () => {});
}
