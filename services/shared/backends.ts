import { MemoryChatStore } from "./adapters/memory/memory-chat-store.ts";
import { MemoryInboxStore } from "./adapters/memory/memory-inbox-store.ts";
import { type CommonConfig, ConfigError } from "./config.ts";
import type { Logger } from "./logger.ts";
import type { Bus } from "./ports/bus.ts";
import type { ChatStore } from "./ports/chat-store.ts";
import type { DeliveryChannel } from "./ports/delivery-channel.ts";
import type { InboxStore } from "./ports/inbox-store.ts";
import type { SessionRegistry } from "./ports/session-registry.ts";

/**
 * The adapters a service process uses, chosen by configuration alone (CHAT_STORE, CHAT_BUS,
 * CHAT_REGISTRY). Nothing else in the code knows which implementation is behind a port.
 */

/** Stores are the persistence service's backends. */
export interface Stores {
  store: ChatStore;
  inbox: InboxStore;
  close(): Promise<void>;
}

/** createStores opens the chat store and inbox store the configuration names. */
export async function createStores(config: CommonConfig, _log: Logger): Promise<Stores> {
  switch (config.backends.store) {
    case "memory":
      return {
        store: new MemoryChatStore(config.region),
        inbox: new MemoryInboxStore(config.region),
        close: async () => {},
      };
  }
}

/** Shared are the backends services share within a region: bus, session registry, delivery channel. */
export interface Shared {
  bus: Bus;
  registry: SessionRegistry;
  channel: DeliveryChannel;
  close(): Promise<void>;
}

/**
 * createShared opens the region's shared backends. In-memory stand-ins are refused here: in a
 * process of its own, an in-memory bus or registry is invisible to the other services and
 * nothing would be delivered. (`npm start` runs every service in one process and shares them.)
 */
export async function createShared(config: CommonConfig, _log: Logger): Promise<Shared> {
  const memory = (["bus", "registry"] as const).filter((b) => config.backends[b] === "memory");
  if (memory.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n${memory
        .map(
          (b) =>
            `  ${b === "bus" ? "CHAT_BUS" : "CHAT_REGISTRY"}: "memory" works only with every service in one process (npm start)`,
        )
        .join("\n")}`,
    );
  }
  throw new ConfigError("invalid configuration: no shared backend is configured");
}
