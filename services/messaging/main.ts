// The messaging service as its own process.
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { loadMessagingConfig } from "../shared/config.ts";
import { runService } from "../shared/process.ts";
import { build } from "./server.ts";

await runService(
  "messaging",
  loadMessagingConfig,
  async ({ config, clients, shared, log, metrics }) =>
    build({
      config,
      persistence: clients.client(PersistenceService, config.urls.persistence),
      ...(await shared()),
      log,
      metrics,
    }),
);
