// A gateway instance as its own process.
import { MessagingService } from "../../gen/chat/v1/messaging_pb.ts";
import { NotificationService } from "../../gen/chat/v1/notification_pb.ts";
import { loadGatewayConfig } from "../shared/config.ts";
import { runService } from "../shared/process.ts";
import { createJwtVerifier } from "./auth.ts";
import { build } from "./server.ts";

await runService("gateway", loadGatewayConfig, async ({ config, clients, shared, log, metrics }) =>
  build({
    config,
    verifier: createJwtVerifier(config.auth),
    operatorVerifier: createJwtVerifier({
      ...config.auth,
      audience: config.admin.operatorAudience,
    }),
    messaging: clients.client(MessagingService, config.urls.messaging),
    notification: clients.client(NotificationService, config.urls.notification),
    ...(await shared()),
    log,
    metrics,
  }),
);
