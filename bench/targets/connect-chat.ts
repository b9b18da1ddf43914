// A benchmark target: a whole Connect Chat region in this process (`npm start`'s layout: each
// service on its own port, gRPC between them over loopback), on the embedded backends or, with
// `real`, on DynamoDB Local, redis-server and librdkafka's mock Kafka started here.
import { startLocalBackends } from "../../dev/backends/local.ts";
import { startLocalRegion } from "../../services/region/region.ts";
import { openShared, openStores } from "../../services/shared/backends.ts";
import { loadPersistenceConfig } from "../../services/shared/config.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { memoryWindows, runTarget } from "./harness.ts";
import { type Counts, countPublished, scrapeServices } from "./metrics.ts";

const kind = process.argv[2] === "real" ? "real" : "embedded";

await runTarget(async () => {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CHAT_REGION: "bench",
    LOG_LEVEL: "warn",
    ...memoryWindows(),
  };
  const backends = kind === "real" ? await startLocalBackends() : undefined;
  Object.assign(env, backends?.env, backends && { KAFKA_MAX_WAIT_MS: "20" });
  // The region's backends are opened here, as the region would open them, so that what the
  // services publish can be counted on its way to the bus.
  const config = loadPersistenceConfig(env);
  const stores = openStores(config.backends.store, config.region, config.peers);
  const shared = await openShared(config, silentLogger);
  const published: Counts = {};
  const region = await startLocalRegion({
    env,
    backends: { stores, shared: { ...shared, bus: countPublished(shared.bus, published) } },
  });
  const metricsUrls = [
    region.urls.gatewayAdmin,
    region.urls.messaging,
    region.urls.notification,
    region.urls.persistence,
  ].map((u) => `${u}/metrics`);
  return {
    url: region.wsUrl,
    description:
      kind === "real"
        ? "Connect Chat, all four services in one process, on DynamoDB Local, redis-server and mock Kafka (child processes)"
        : "Connect Chat, all four services in one process (calling each other in-process), embedded backends",
    tokens: (users) => Promise.all(users.map((u) => region.token(u))),
    async counters() {
      return { ...(await scrapeServices(metricsUrls)), busPublished: { ...published } };
    },
    async stop() {
      await region.stop();
      // Given its backends, the region leaves them open.
      await shared.close().catch(() => undefined);
      await stores.close();
      await backends?.stop();
    },
  };
});
