// The notification service as its own process.
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { createShared } from "../shared/backends.ts";
import { createServiceClients } from "../shared/clients.ts";
import { loadNotificationConfig } from "../shared/config.ts";
import { createLogger } from "../shared/logger.ts";
import { createMetrics } from "../shared/metrics.ts";
import { failStartup, stopOnSignals } from "../shared/run.ts";
import { serveApp } from "../shared/service-app.ts";
import { createPushProvider } from "./push/create.ts";
import { build } from "./server.ts";

try {
  const config = loadNotificationConfig();
  const log = createLogger({
    service: "notification",
    region: config.region,
    instance: config.instanceId,
    level: config.logLevel,
  });
  const shared = await createShared(config, log);
  const clients = createServiceClients(config.rpcTimeoutMs);
  const app = build({
    config: { pushDelayMs: config.push.delayMs, replayPageSize: config.replayPageSize },
    persistence: clients.client(PersistenceService, config.urls.persistence),
    ...shared,
    push: createPushProvider(config, log),
    log,
    metrics: createMetrics("notification"),
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
