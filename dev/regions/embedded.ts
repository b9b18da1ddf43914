import {
  EPHEMERAL_PORTS,
  type LocalRegion,
  type LocalRegionOptions,
  startLocalRegion,
} from "../../services/region/region.ts";
import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { MemoryDeliveryChannel } from "../../services/shared/adapters/memory/memory-delivery-channel.ts";
import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { MemorySessionRegistry } from "../../services/shared/adapters/memory/memory-session-registry.ts";
import { TOPICS } from "../../services/shared/topics.ts";
import { startDevIssuer } from "../issuer.ts";
import { replicateMemoryTables } from "../replication/memory-table-replicator.ts";
import type { ReplicationOptions } from "../replication/replication.ts";
import { mirrorTopics } from "../replication/topic-mirror.ts";
import {
  REGION_NAMES,
  type RegionHandle,
  type Regions,
  ReplicationControl,
  regionsOf,
} from "./regions.ts";

/** EmbeddedRegionsOptions tune the embedded regions. */
export interface EmbeddedRegionsOptions {
  names?: readonly string[];
  /** ports per region, in the order of `names` (default: any free ports). */
  ports?: Array<NonNullable<LocalRegionOptions["ports"]>>;
  issuerPort?: number;
  host?: string;
  /** env is added to every region's environment (CHAT_REGION and CHAT_PEER_REGIONS are set). */
  env?: NodeJS.ProcessEnv;
  /** replication tunes the stand-ins (delay, jitter). */
  replication?: { table?: ReplicationOptions; topics?: ReplicationOptions };
  log?: LocalRegionOptions["log"];
  push?: LocalRegionOptions["push"];
  /** hooks let tests stop a region's sends at the dual-write point, as a crash would. */
  hooks?: (region: string) => LocalRegionOptions["hooks"];
}

/** EmbeddedRegion is a RegionHandle with the running LocalRegion and its backends. */
export interface EmbeddedRegion extends RegionHandle {
  readonly local: LocalRegion;
  /** backends are what outlives the region's services: its stores and its bus. */
  readonly backends: { store: MemoryChatStore; inbox: MemoryInboxStore; bus: MemoryBus };
}

/**
 * startEmbeddedRegions runs two (or more) complete regions in this process, each on its own
 * in-memory stores, bus, session registry and delivery channel, with the table replicator and
 * the topic mirror between every pair. A killed region keeps its stores and bus (a region's
 * DynamoDB replica and MSK cluster outlive its tasks) and loses its session registry (Redis is
 * ephemeral), as a real region does.
 */
export async function startEmbeddedRegions(opts: EmbeddedRegionsOptions = {}): Promise<Regions> {
  const names = [...(opts.names ?? REGION_NAMES)];
  const host = opts.host ?? "127.0.0.1";
  const issuer = await startDevIssuer({ host, port: opts.issuerPort ?? 0 });
  const control = new ReplicationControl();
  const handles: EmbeddedRegion[] = [];
  try {
    const backends = names.map((name) => ({
      name,
      store: new MemoryChatStore(name),
      inbox: new MemoryInboxStore(name),
      bus: new MemoryBus(),
    }));
    for (const from of backends) {
      for (const to of backends) {
        if (from === to) continue;
        control.add(
          from.name,
          to.name,
          replicateMemoryTables({
            from: from.name,
            to: to.name,
            pairs: [
              [from.store, to.store],
              [from.inbox, to.inbox],
            ],
            options: opts.replication?.table,
          }),
        );
        control.add(
          from.name,
          to.name,
          await mirrorTopics({
            from: { region: from.name, bus: from.bus },
            to: { region: to.name, bus: to.bus },
            topics: Object.values(TOPICS)
              .filter((t) => t.mirrored)
              .map((t) => t.name),
            options: opts.replication?.topics,
          }),
        );
      }
    }
    for (const [i, b] of backends.entries()) {
      const env = {
        HOST: host,
        ...opts.env,
        CHAT_REGION: b.name,
        CHAT_PEER_REGIONS: names.filter((n) => n !== b.name).join(","),
      };
      const start = () =>
        startLocalRegion({
          env,
          ports: opts.ports?.[i] ?? EPHEMERAL_PORTS,
          log: opts.log,
          push: opts.push,
          hooks: opts.hooks?.(b.name),
          issuer,
          backends: {
            stores: { store: b.store, inbox: b.inbox, close: async () => {} },
            shared: {
              bus: b.bus,
              // The session registry and the delivery channels are Redis: lost with the region.
              registry: new MemorySessionRegistry(),
              channel: new MemoryDeliveryChannel(),
              close: async () => {},
            },
          },
        });
      let local = await start();
      let up = true;
      const handle: EmbeddedRegion = {
        name: b.name,
        backends: b,
        get local() {
          return local;
        },
        get gatewayUrls() {
          return [local.wsUrl];
        },
        get services() {
          return { ...local.urls };
        },
        get up() {
          return up;
        },
        internalToken: (to, userId) => local.internalToken(to, userId),
        async kill() {
          if (!up) return;
          up = false;
          control.setUp(b.name, false);
          await local.kill();
        },
        async start() {
          if (up) return;
          // Replication catches up first, as a recovering region's replica does while its
          // tasks start: what others did meanwhile (takeovers, push claims) is seen at once.
          control.setUp(b.name, true);
          local = await start();
          up = true;
        },
      };
      handles.push(handle);
    }
  } catch (err) {
    for (const h of handles) await h.local.stop().catch(() => undefined);
    await control.close();
    await issuer.close();
    throw err;
  }
  return regionsOf({
    mode: "embedded",
    handles,
    issuer,
    control,
    async stop() {
      for (const h of handles) if (h.up) await h.local.stop();
      await control.close();
      await issuer.close();
    },
  });
}
