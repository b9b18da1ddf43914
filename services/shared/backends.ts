import { connectDynamo } from "./adapters/dynamodb/client.ts";
import { DynamoChatStore } from "./adapters/dynamodb/dynamo-chat-store.ts";
import { DynamoInboxStore } from "./adapters/dynamodb/dynamo-inbox-store.ts";
import { kafkaConfigFor } from "./adapters/kafka/connect.ts";
import { KafkaBus } from "./adapters/kafka/kafka-bus.ts";
import { MemoryBus } from "./adapters/memory/memory-bus.ts";
import { MemoryChatStore } from "./adapters/memory/memory-chat-store.ts";
import { MemoryDeliveryChannel } from "./adapters/memory/memory-delivery-channel.ts";
import { MemoryInboxStore } from "./adapters/memory/memory-inbox-store.ts";
import { MemorySessionRegistry } from "./adapters/memory/memory-session-registry.ts";
import { connectRedis } from "./adapters/redis/connect.ts";
import { RedisDeliveryChannel } from "./adapters/redis/redis-delivery-channel.ts";
import { RedisSessionRegistry } from "./adapters/redis/redis-session-registry.ts";
import {
  type BusBackend,
  type CommonConfig,
  ConfigError,
  type RegistryBackend,
  type StoreBackend,
} from "./config.ts";
import type { Logger } from "./logger.ts";
import type { Bus } from "./ports/bus.ts";
import type { ChatStore } from "./ports/chat-store.ts";
import type { DeliveryChannel } from "./ports/delivery-channel.ts";
import type { InboxStore } from "./ports/inbox-store.ts";
import type { SessionRegistry } from "./ports/session-registry.ts";
import { allTopicNames } from "./topics.ts";

/**
 * The adapters behind each port, chosen by configuration alone (CHAT_STORE, CHAT_BUS,
 * CHAT_REGISTRY). Nothing else in the code knows which implementation is in use.
 */

/** Stores are the persistence service's backends. */
export interface Stores {
  store: ChatStore;
  inbox: InboxStore;
  close(): Promise<void>;
}

/** openStores opens the chat store and inbox store of a store backend. */
export function openStores(
  backend: StoreBackend,
  region: string,
  peers: readonly string[],
): Stores {
  switch (backend.kind) {
    case "memory":
      // The embedded stores keep a window, not everything (README: MEMORY_* variables).
      return {
        store: new MemoryChatStore(region, {
          historyMessages: backend.historyMessages,
          historyRetentionMs: backend.historyRetentionMs,
        }),
        inbox: new MemoryInboxStore(region, {
          maxEntries: backend.inboxEntries,
          retentionMs: backend.inboxRetentionMs,
        }),
        close: async () => {},
      };
    case "dynamodb": {
      const db = connectDynamo(backend);
      return {
        store: new DynamoChatStore(db, backend.table, region, { peers }),
        inbox: new DynamoInboxStore(db, backend.table, region, {
          peers,
          retentionSeconds: backend.inboxRetentionDays * 86_400,
        }),
        close: async () => db.destroy(),
      };
    }
  }
}

/** Registry is the session registry with the delivery channel that shares its backend. */
export interface Registry {
  registry: SessionRegistry;
  channel: DeliveryChannel;
  close(): Promise<void>;
}

/** openRegistry opens the session registry and delivery channel of a registry backend. */
export function openRegistry(backend: RegistryBackend, log: Logger): Registry {
  switch (backend.kind) {
    case "memory":
      return {
        registry: new MemorySessionRegistry(),
        channel: new MemoryDeliveryChannel(),
        close: async () => {},
      };
    case "redis": {
      const conn = connectRedis(backend, log);
      const channel = new RedisDeliveryChannel(conn, {
        keyPrefix: backend.keyPrefix,
        subscriber: () => connectRedis(backend, log),
      });
      return {
        registry: new RedisSessionRegistry(conn, { keyPrefix: backend.keyPrefix }),
        channel,
        close: async () => {
          await channel.close();
          await conn.quit().catch(() => conn.disconnect());
        },
      };
    }
  }
}

/**
 * openBus opens the bus of a bus backend (resolving MSK brokers if need be). Topics it may
 * create are the region's own and their copies mirrored from other regions (`mirrors` are
 * their prefixes), so consumers can subscribe before the replicator's first record.
 */
export async function openBus(
  backend: BusBackend,
  mirrors: readonly string[],
  log: Logger,
): Promise<Bus> {
  switch (backend.kind) {
    case "memory":
      return new MemoryBus();
    case "kafka":
      return new KafkaBus(
        await kafkaConfigFor(backend),
        {
          sessionTimeoutMs: backend.sessionTimeoutMs,
          maxWaitMs: backend.maxWaitMs,
          publishTimeoutMs: backend.publishTimeoutMs,
          ensureTopics: backend.createTopics && {
            names: allTopicNames(mirrors),
            ...backend.createTopics,
          },
        },
        log,
      );
  }
}

/** Shared are the backends the services of a region share: bus, session registry, channel. */
export interface Shared {
  bus: Bus;
  registry: SessionRegistry;
  channel: DeliveryChannel;
  close(): Promise<void>;
}

/** createStores opens the stores a persistence process is configured with. */
export async function createStores(config: CommonConfig, _log: Logger): Promise<Stores> {
  return openStores(config.backends.store, config.region, config.peers);
}

/**
 * createShared opens the shared backends of a service process. In-memory stand-ins are
 * refused: in a process of its own, an in-memory bus or registry is invisible to the other
 * services and nothing would be delivered. (`npm start` shares them within one process.)
 */
export async function createShared(config: CommonConfig, log: Logger): Promise<Shared> {
  const memory = (["bus", "registry"] as const).filter((b) => config.backends[b].kind === "memory");
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
  return openShared(config, log);
}

/** openShared opens the shared backends the configuration names, memory ones included. */
export async function openShared(config: CommonConfig, log: Logger): Promise<Shared> {
  const registry = openRegistry(config.backends.registry, log);
  const bus = await openBus(config.backends.bus, config.mirrors, log);
  return {
    bus,
    registry: registry.registry,
    channel: registry.channel,
    close: async () => {
      await bus.close();
      await registry.close();
    },
  };
}
