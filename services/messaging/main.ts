// The messaging service as its own process.
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { createShared } from "../shared/backends.ts";
import { createServiceClients } from "../shared/clients.ts";
import { loadMessagingConfig } from "../shared/config.ts";
import { createLogger } from "../shared/logger.ts";
import { createMetrics } from "../shared/metrics.ts";
import { failStartup, stopOnSignals } from "../shared/run.ts";
import { serveApp } from "../shared/service-app.ts";
import { build } from "./server.ts";

try {
  const config = loadMessagingConfig();
  const log = createLogger({
    service: "messaging",
    region: config.region,
    instance: config.instanceId,
    level: config.logLevel,
  });
  const shared = await createShared(config, log);
  const clients = createServiceClients(config.rpcTimeoutMs);
  const app = build({
    config,
    persistence: clients.client(PersistenceService, config.urls.persistence),
    ...shared,
    log,
    metrics: createMetrics("messaging"),
  });
  const running = await serveApp(app, { port: config.port, host: config.host });
  stopOnSignals(async () => {
    await running.stop();
    clients.close();
    await shared.close();
  }, log);
} catch (err) {
  failStartup(err);
}
