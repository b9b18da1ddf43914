// The persistence service as its own process: the only one that touches the chat database.
import { loadPersistenceConfig } from "../shared/config.ts";
import { runService } from "../shared/process.ts";
import { build } from "./server.ts";

await runService("persistence", loadPersistenceConfig, async ({ stores, peers, log, metrics }) =>
  build({ ...(await stores()), peers, log, metrics }),
);
