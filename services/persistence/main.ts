// The persistence service as its own process: the only one that touches the chat database.
import { createStores } from "../shared/backends.ts";
import { loadPersistenceConfig } from "../shared/config.ts";
import { createLogger } from "../shared/logger.ts";
import { createMetrics } from "../shared/metrics.ts";
import { failStartup, stopOnSignals } from "../shared/run.ts";
import { serveApp } from "../shared/service-app.ts";
import { build } from "./server.ts";

try {
  const config = loadPersistenceConfig();
  const log = createLogger({
    service: "persistence",
    region: config.region,
    instance: config.instanceId,
    level: config.logLevel,
  });
  const stores = await createStores(config, log);
  const app = build({ ...stores, log, metrics: createMetrics("persistence") });
  const running = await serveApp(app, { port: config.port, host: config.host });
  stopOnSignals(async () => {
    await running.stop();
    await stores.close();
  }, log);
} catch (err) {
  failStartup(err);
}
