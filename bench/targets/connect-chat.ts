// A benchmark target: a whole Connect Chat region in this process (`npm start`'s layout: each
// service on its own port, gRPC between them over loopback), on the embedded backends or, with
// `real`, on DynamoDB Local, redis-server and librdkafka's mock Kafka started here.
import { startLocalBackends } from "../../dev/backends/local.ts";
import { startLocalRegion } from "../../services/region/region.ts";
import { runTarget } from "./harness.ts";

const kind = process.argv[2] === "real" ? "real" : "embedded";

await runTarget(async () => {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CHAT_REGION: "bench",
    LOG_LEVEL: "warn",
  };
  const backends = kind === "real" ? await startLocalBackends() : undefined;
  Object.assign(env, backends?.env, backends && { KAFKA_MAX_WAIT_MS: "20" });
  const region = await startLocalRegion({ env });
  return {
    url: region.wsUrl,
    description:
      kind === "real"
        ? "Connect Chat, all four services in one process, on DynamoDB Local, redis-server and mock Kafka (child processes)"
        : "Connect Chat, all four services in one process (gRPC over loopback), embedded backends",
    tokens: (users) => Promise.all(users.map((u) => region.token(u))),
    async stop() {
      await region.stop();
      await backends?.stop();
    },
  };
});
