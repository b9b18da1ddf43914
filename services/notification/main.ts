// The notification service as its own process.
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { loadNotificationConfig } from "../shared/config.ts";
import { runService } from "../shared/process.ts";
import { createPushProvider } from "./push/create.ts";
import { build } from "./server.ts";

await runService(
  "notification",
  loadNotificationConfig,
  async ({ config, clients, peers, shared, log, metrics }) =>
    build({
      peers,
      config: {
        pushDelayMs: config.push.delayMs,
        replayPageSize: config.replayPageSize,
        maxPushDevicesPerUser: config.push.maxDevicesPerUser,
      },
      persistence: clients.client(PersistenceService, config.urls.persistence),
      ...(await shared()),
      push: createPushProvider(config, log),
      log,
      metrics,
    }),
);
