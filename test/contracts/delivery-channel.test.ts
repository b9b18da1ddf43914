import test from "ava";
import { requireProgram } from "../../dev/backends/processes.ts";
import { type RedisServer, startRedis } from "../../dev/backends/redis.ts";
import { MemoryDeliveryChannel } from "../../services/shared/adapters/memory/memory-delivery-channel.ts";
import { connectRedis } from "../../services/shared/adapters/redis/connect.ts";
import { RedisDeliveryChannel } from "../../services/shared/adapters/redis/redis-delivery-channel.ts";
import { deliveryChannelContract } from "./delivery-channel.suite.ts";

deliveryChannelContract("MemoryDeliveryChannel", async () => ({
  channel: new MemoryDeliveryChannel(),
}));

const redis = requireProgram("redis-server", "apt-get install redis-server");
let server: RedisServer | undefined;
if (redis.available) {
  test.before(async () => {
    server = await startRedis();
  });
  test.after.always(async () => {
    await server?.stop();
  });
  deliveryChannelContract("RedisDeliveryChannel", async () => {
    const config = { url: server?.url ?? "", keyPrefix: "" };
    return {
      channel: new RedisDeliveryChannel(connectRedis(config), {
        keyPrefix: "t:",
        subscriber: () => connectRedis(config),
        owned: true,
      }),
    };
  });
} else {
  test.skip(`RedisDeliveryChannel: ${redis.why}`, () => {});
}
