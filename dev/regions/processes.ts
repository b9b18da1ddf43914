import { KafkaBus } from "../../services/shared/adapters/kafka/kafka-bus.ts";
import { silentLogger } from "../../services/shared/logger.ts";
import { TOPICS } from "../../services/shared/topics.ts";
import { type LocalBackends, startLocalBackends } from "../backends/local.ts";
import { startDevIssuer } from "../issuer.ts";
import { type ProcessRegion, startProcessRegion } from "../region.ts";
import { replicateDynamoTable } from "../replication/dynamo-table-replicator.ts";
import type { Replication, ReplicationOptions } from "../replication/replication.ts";
import { mirrorTopics } from "../replication/topic-mirror.ts";
import {
  REGION_NAMES,
  type RegionHandle,
  type Regions,
  ReplicationControl,
  regionsOf,
} from "./regions.ts";

/** ProcessRegionsOptions tune regions of separate processes. */
export interface ProcessRegionsOptions {
  names?: readonly string[];
  /** env is added to every service's environment (CHAT_REGION and CHAT_PEER_REGIONS are set). */
  env?: NodeJS.ProcessEnv;
  /** tasks per region (default: two gateways and two messaging tasks, as `npm run dev:region`). */
  tasks?: { gateways: number; messaging: number };
  replication?: { table?: ReplicationOptions; topics?: ReplicationOptions };
  /** kafkaBrokers is the number of brokers of each region's mock Kafka (default 1). */
  kafkaBrokers?: number;
  log?: (line: string) => void;
}

/** ProcessRegionHandle is a RegionHandle with its processes and backends. */
export interface ProcessRegionHandle extends RegionHandle {
  readonly processes: ProcessRegion;
  readonly backends: LocalBackends;
}

const MIRRORED = Object.values(TOPICS)
  .filter((t) => t.mirrored)
  .map((t) => t.name);

/**
 * startProcessRegions runs two (or more) regions as ECS would, every service of every region
 * its own process, each region on its own DynamoDB Local (on disk), redis-server and mock
 * Kafka, with the table replicator (DynamoDB Streams) and the topic mirror (Kafka to Kafka)
 * between every pair. Killing a region SIGKILLs its service processes and takes its backends
 * away (DynamoDB Local and Redis killed, Kafka unreachable); starting it brings the table back
 * from disk, Redis empty and Kafka with its log, then the services.
 */
export async function startProcessRegions(opts: ProcessRegionsOptions = {}): Promise<Regions> {
  const names = [...(opts.names ?? REGION_NAMES)];
  const log = opts.log ?? (() => {});
  const issuer = await startDevIssuer();
  const control = new ReplicationControl();
  const backends = new Map<string, LocalBackends>();
  const regions = new Map<string, ProcessRegion>();
  const buses: KafkaBus[] = [];
  /** mirrors out of each region: recreated when it comes back, as its brokers were away. */
  const mirrorsFrom = new Map<string, Replication[]>();
  const stopAll = async () => {
    for (const r of regions.values()) await r.stop().catch(() => undefined);
    await control.close();
    await Promise.all(buses.map((b) => b.close().catch(() => undefined)));
    for (const b of backends.values()) await b.stop();
    await issuer.close();
  };
  const bus = (b: LocalBackends) => {
    const k = new KafkaBus(
      { clientId: "topic-mirror", brokers: b.kafka.brokers },
      { sessionTimeoutMs: 6_000, maxWaitMs: 100 },
      silentLogger,
    );
    buses.push(k);
    return k;
  };
  const startMirrors = async (from: string) => {
    const out: Replication[] = [];
    for (const to of names) {
      if (to === from) continue;
      const mirror = await mirrorTopics({
        from: { region: from, bus: bus(backends.get(from) as LocalBackends) },
        to: { region: to, bus: bus(backends.get(to) as LocalBackends) },
        topics: MIRRORED,
        options: opts.replication?.topics,
      });
      control.add(from, to, mirror);
      out.push(mirror);
    }
    mirrorsFrom.set(from, out);
  };
  try {
    await Promise.all(
      names.map(async (name) => {
        const peers = names.filter((n) => n !== name);
        backends.set(
          name,
          await startLocalBackends({
            persistent: true,
            mirrorsOf: peers,
            kafkaBrokers: opts.kafkaBrokers,
          }),
        );
      }),
    );
    for (const from of names) {
      for (const to of names) {
        if (from === to) continue;
        const [a, b] = [backends.get(from), backends.get(to)] as [LocalBackends, LocalBackends];
        control.add(
          from,
          to,
          await replicateDynamoTable({
            from: { region: from, ...a.dynamo },
            to: { region: to, ...b.dynamo },
            options: opts.replication?.table,
          }),
        );
      }
      await startMirrors(from);
    }
    await Promise.all(
      names.map(async (name) => {
        regions.set(
          name,
          await startProcessRegion({
            region: name,
            backends: backends.get(name),
            issuer,
            tasks: opts.tasks,
            log,
            env: {
              ...opts.env,
              CHAT_PEER_REGIONS: names.filter((n) => n !== name).join(","),
            },
          }),
        );
      }),
    );
  } catch (err) {
    await stopAll();
    throw err;
  }

  const handles: ProcessRegionHandle[] = names.map((name) => {
    const processes = regions.get(name) as ProcessRegion;
    const b = backends.get(name) as LocalBackends;
    let up = true;
    return {
      name,
      processes,
      backends: b,
      gatewayUrls: processes.gatewayUrls,
      get services() {
        return Object.fromEntries([...processes.processes].map(([n, p]) => [n, p.url]));
      },
      get up() {
        return up;
      },
      internalToken: (to, userId) => processes.internalToken(to, userId),
      async kill() {
        if (!up) return;
        up = false;
        control.setUp(name, false);
        await processes.killAll();
        // Its mirrors read from brokers about to go away: stop them; they resume from their
        // committed offsets when the region comes back.
        for (const m of mirrorsFrom.get(name) ?? []) {
          control.remove(m);
          await m.close();
        }
        mirrorsFrom.delete(name);
        await b.outage();
      },
      async start() {
        if (up) return;
        await b.recover();
        control.setUp(name, true);
        await startMirrors(name);
        await processes.startAll();
        up = true;
      },
      async freeze() {
        if (!up) return;
        up = false;
        control.setUp(name, false);
        processes.signalAll("SIGSTOP");
        b.freeze(true);
      },
      async thaw() {
        if (up) return;
        b.freeze(false);
        processes.signalAll("SIGCONT");
        control.setUp(name, true);
        up = true;
      },
    };
  });
  return regionsOf({ mode: "processes", handles, issuer, control, stop: stopAll });
}
