// The messaging service as its own process.
import { PersistenceService } from "../../gen/chat/v1/persistence_pb.ts";
import { loadMessagingConfig } from "../shared/config.ts";
import { runService } from "../shared/process.ts";
import type { MessagingHooks } from "./handler.ts";
import { build } from "./server.ts";

/** crashAfterAppend kills this process right after a message with `text` is persisted. */
function crashAfterAppend(text: string): MessagingHooks {
  return {
    afterAppend: async (m) => {
      if (m.content.case === "text" && m.content.value === text)
        process.kill(process.pid, "SIGKILL");
    },
  };
}

await runService(
  "messaging",
  loadMessagingConfig,
  async ({ config, clients, peers, shared, log, metrics }) =>
    build({
      config,
      persistence: clients.client(PersistenceService, config.urls.persistence),
      peers,
      ...(await shared()),
      log,
      metrics,
      hooks:
        config.crashAfterAppend === undefined
          ? undefined
          : crashAfterAppend(config.crashAfterAppend),
    }),
);
