// A gateway instance as its own process.
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import { createShared } from "../shared/backends.ts";
import { createServiceClients } from "../shared/clients.ts";
import { loadGatewayConfig } from "../shared/config.ts";
import { createLogger } from "../shared/logger.ts";
import { createMetrics } from "../shared/metrics.ts";
import { failStartup, stopOnSignals } from "../shared/run.ts";
import { serveApp } from "../shared/service-app.ts";
import { createJwtVerifier } from "./auth.ts";
import { build } from "./server.ts";

try {
  const config = loadGatewayConfig();
  const log = createLogger({
    service: "gateway",
    region: config.region,
    instance: config.instanceId,
    level: config.logLevel,
  });
  const shared = await createShared(config, log);
  const clients = createServiceClients(config.rpcTimeoutMs);
  const app = build({
    config,
    verifier: createJwtVerifier(config.auth),
    messaging: clients.client(MessagingService, config.urls.messaging),
    notification: clients.client(NotificationService, config.urls.notification),
    ...shared,
    log,
    metrics: createMetrics("gateway"),
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
