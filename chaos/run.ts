import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ChatClient } from "../client/index.ts";
import { freePort } from "../dev/backends/processes.ts";
import { type EmbeddedRegion, startEmbeddedRegions } from "../dev/regions/embedded.ts";
import { type ProcessRegionHandle, startProcessRegions } from "../dev/regions/processes.ts";
import type { RegionHandle, Regions } from "../dev/regions/regions.ts";
import type { ReplicationOptions } from "../dev/replication/replication.ts";
import { TcpProxy } from "../dev/tcp-proxy.ts";
import { type CheckReport, check } from "./checker.ts";
import type { ClientId, FaultKind, HistoryEvent, StoredHistories } from "./history.ts";
import { sendKey } from "./history.ts";
import { HistoryLog, recordClient, recordedSend } from "./recorder.ts";
import { readStored } from "./stored.ts";

/** FaultPlan is one fault of a run: what, where, when (after the load starts) and how long. */
export interface FaultPlan {
  kind: FaultKind;
  /** region is where it happens (default: the first region). */
  region?: string;
  atMs: number;
  durationMs: number;
}

/** ChaosOptions describe a run. */
export interface ChaosOptions {
  /** mode: every region in this process (embedded) or every service its own process. */
  mode: "embedded" | "processes";
  users: number;
  /** groups of `groupSize` members, on top of one direct conversation per pair of users. */
  groups: number;
  groupSize: number;
  /** every `secondDeviceEvery`-th user has a second device. */
  secondDeviceEvery: number;
  /** sendsPerSecond is the total open-loop send rate, spread over every device. */
  sendsPerSecond: number;
  /** loadMs is how long the load runs; faults happen within it. */
  loadMs: number;
  faults: FaultPlan[];
  /** settleMs bounds the wait, after the load, for every acked send to be delivered. */
  settleMs: number;
  /** farMs is the latency of a client's far region (each client has a near one). */
  farMs: number;
  /** historyFile, when set, receives the history as JSON lines. */
  historyFile?: string;
  /** logsDir, when set, receives the end of every service process's log (processes mode). */
  logsDir?: string;
  /** env is added to every region's environment. */
  env?: NodeJS.ProcessEnv;
  /** replication tunes the stand-ins; `lose` there builds a deliberately broken run. */
  replication?: { table?: ReplicationOptions; topics?: ReplicationOptions };
  /** kafkaBrokers per region (processes mode; a broker-down fault needs more than one). */
  kafkaBrokers?: number;
  log?: (line: string) => void;
}

/** ChaosResult is what a run recorded, what the stores held at the end, and the verdict. */
export interface ChaosResult {
  report: CheckReport;
  events: HistoryEvent[];
  stored: StoredHistories;
  clients: number;
  conversations: number;
  durationMs: number;
}

/**
 * CHAOS_REPLICATION is the replication between the regions: delays of the order real
 * cross-region replication has, so that a region dies with some of its writes not yet across
 * (the replication-lag window the report counts).
 */
export const CHAOS_REPLICATION = {
  table: { delayMs: 300, jitterMs: 200 },
  topics: { delayMs: 150 },
};

/** CHAOS_ENV shortens the multi-region clocks so faults play out within a short run. */
export const CHAOS_ENV = {
  HEARTBEAT_INTERVAL_MS: "5000",
  PUSH_DELAY_MS: "600000",
  CANARY_INTERVAL_MS: "1000",
  TAKEOVER_AFTER_MS: "3000",
  SESSION_TTL_MS: "15000",
  LOG_LEVEL: "warn",
};

interface Device {
  id: ClientId;
  user: string;
  client: ChatClient;
  conversations: string[];
  next: number;
  sent: number;
}

/**
 * runChaos runs the regions, puts simulated users on them (each device near one region and
 * far from the other, behind TCP proxies, so the SDK's latency preference spreads them), sends
 * at a steady open-loop rate while the faults play out, heals everything, waits for delivery to
 * settle, reads every region's stores, and checks the recorded histories against them.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const say = opts.log ?? (() => {});
  const started = Date.now();
  const log = new HistoryLog(opts.historyFile);
  const env = { ...CHAOS_ENV, ...opts.env };
  const regions = await startRegions(opts, env);
  const proxies: TcpProxy[] = [];
  const devices: Device[] = [];
  try {
    const names = regions.regions.map((r) => r.name);
    // Per region a near and a far door, as a phone sees the region next door and one abroad.
    const doors = new Map<string, { near: TcpProxy; far: TcpProxy }>();
    for (const r of regions.regions) {
      const targets = r.gatewayUrls.map((u) => u.replace(/^ws/, "http"));
      const near = await TcpProxy.start(targets);
      const far = await TcpProxy.start(targets);
      far.delay(opts.farMs);
      proxies.push(near, far);
      doors.set(r.name, { near, far });
    }
    const topology = plan(opts);
    say(
      `${regions.mode} regions ${names.join(", ")}; ${topology.devices.length} devices of ${opts.users} users in ${topology.conversations.length} conversations`,
    );
    for (const [i, d] of topology.devices.entries()) {
      const home = names[i % names.length] as string;
      const client = new ChatClient({
        regions: names.map((name) => {
          const door = doors.get(name) as { near: TcpProxy; far: TcpProxy };
          return { name, url: (name === home ? door.near : door.far).url("/ws") };
        }),
        token: () => regions.token(d.user, 86_400),
        deviceId: d.device,
        reconnect: { initialMs: 100, maxMs: 2_000 },
        gapTimeoutMs: 500,
        syncIntervalMs: 30_000,
      });
      const id = `${d.user}/${d.device}`;
      recordClient(log, client, id);
      devices.push({ id, user: d.user, client, conversations: [], next: 0, sent: 0 });
    }
    for (let i = 0; i < devices.length; i += 20) {
      await Promise.all(devices.slice(i, i + 20).map((d) => d.client.connect()));
    }

    // Conversations, created by their first member's first device.
    const conversationIds: string[] = [];
    for (const c of topology.conversations) {
      const creator = devices.find((d) => d.user === c.members[0]) as Device;
      const others = c.members.slice(1);
      const conversation =
        c.kind === "direct"
          ? await creator.client.createDirect(others[0] as string)
          : await creator.client.createGroup(c.title, others);
      conversationIds.push(conversation.id);
      log.record({ ev: "conversation", conversationId: conversation.id, members: c.members });
      for (const d of devices)
        if (c.members.includes(d.user)) d.conversations.push(conversation.id);
    }
    for (const d of devices) {
      log.record({ ev: "client", client: d.id, user: d.user, conversations: d.conversations });
    }
    // Every region must know every conversation before the load, or early sends would wait.
    await regions.converged(60_000);

    // The load: open loop, each device at its share of the rate, whatever the acks do.
    const sends: Array<Promise<boolean>> = [];
    const intervalMs = (devices.length * 1000) / opts.sendsPerSecond;
    const loadStart = Date.now();
    devices.forEach((d, i) => {
      d.next = loadStart + (i * intervalMs) / devices.length;
    });
    let loading = true;
    const load = (async () => {
      while (loading) {
        const now = Date.now();
        for (const d of devices) {
          while (d.next <= now && loading) {
            const conversationId = d.conversations[d.sent % d.conversations.length] as string;
            const clientMsgId = `${d.id.replace("/", "-")}-${d.sent}`;
            d.sent++;
            d.next += intervalMs;
            sends.push(recordedSend(log, d.client, d.id, conversationId, clientMsgId, clientMsgId));
          }
        }
        await sleep(10);
      }
    })();

    for (const f of [...opts.faults].sort((a, b) => a.atMs - b.atMs)) {
      await sleep(loadStart + f.atMs - Date.now());
      const region = regions.region(f.region ?? (names[0] as string));
      say(`fault ${f.kind} in ${region.name} for ${f.durationMs} ms`);
      log.record({ ev: "fault", fault: f.kind, region: region.name, phase: "start" });
      const undo = await inject(f.kind, region, regions);
      await sleep(f.durationMs);
      await undo();
      log.record({ ev: "fault", fault: f.kind, region: region.name, phase: "end" });
      say(`fault ${f.kind} in ${region.name} healed`);
    }
    await sleep(loadStart + opts.loadMs - Date.now());
    loading = false;
    await load;
    say(`load done: ${sends.length} sends; settling`);

    // Settle: every send answered, replication caught up, every acked send on every device.
    const deadline = Date.now() + opts.settleMs;
    await Promise.race([Promise.all(sends), sleep(opts.settleMs)]);
    await regions.converged(Math.max(1_000, deadline - Date.now())).catch((err: Error) => {
      say(`replication did not converge: ${err.message}`);
    });
    while (Date.now() < deadline && !delivered(log.events(), devices)) await sleep(250);
    log.record({ ev: "healed" });
    say("healed and settled; reading every region's stores");

    const stored = await readStored(
      Object.fromEntries(
        await Promise.all(
          regions.regions.map(async (r) => [
            r.name,
            { url: persistenceUrl(r), token: await r.internalToken("persistence") },
          ]),
        ),
      ),
      conversationIds,
    );
    const events = log.events();
    return {
      report: check(events, stored),
      events,
      stored,
      clients: devices.length,
      conversations: conversationIds.length,
      durationMs: Date.now() - started,
    };
  } finally {
    if (opts.logsDir) saveLogs(regions, opts.logsDir);
    await Promise.all(devices.map((d) => d.client.close().catch(() => undefined)));
    for (const p of proxies) await p.close();
    await regions.stop();
    await log.close();
  }
}

/** saveLogs writes the end of every service process's log, for reading a failed run. */
function saveLogs(regions: Regions, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const r of regions.regions) {
    const processes = (r as Partial<ProcessRegionHandle>).processes;
    for (const [name, p] of processes?.processes ?? []) {
      writeFileSync(join(dir, `${r.name}-${name}.log`), p.output());
    }
  }
}

/** startRegions starts the regions of the run's mode, on fixed ports so restarts keep them. */
async function startRegions(opts: ChaosOptions, env: NodeJS.ProcessEnv): Promise<Regions> {
  if (opts.mode === "processes") {
    return startProcessRegions({
      env,
      replication: opts.replication ?? CHAOS_REPLICATION,
      kafkaBrokers: opts.kafkaBrokers,
      log: opts.log,
    });
  }
  const ports = [];
  for (let i = 0; i < 2; i++) {
    ports.push({
      gateway: await freePort(),
      gatewayAdmin: 0,
      messaging: await freePort(),
      notification: await freePort(),
      persistence: await freePort(),
      issuer: 0,
    });
  }
  return startEmbeddedRegions({
    env,
    ports,
    replication: opts.replication ?? CHAOS_REPLICATION,
  });
}

/** inject starts a fault and returns what ends it. */
async function inject(
  kind: FaultKind,
  region: RegionHandle,
  regions: Regions,
): Promise<() => Promise<void>> {
  const processes = (region as Partial<ProcessRegionHandle>).processes;
  const need = <T>(x: T | undefined): T => {
    if (x === undefined) throw new Error(`${kind} needs regions of processes (--real)`);
    return x;
  };
  switch (kind) {
    case "region-kill":
      await region.kill();
      return () => region.start();
    case "region-freeze": {
      const freeze = need(region.freeze);
      const thaw = need(region.thaw);
      await freeze.call(region);
      return () => thaw.call(region);
    }
    case "partition":
      regions.partition();
      return async () => regions.heal();
    case "gateway-kill":
    case "messaging-kill": {
      const p = need(processes).process(kind === "gateway-kill" ? "gateway-1" : "messaging-1");
      await p.kill();
      return () => p.start();
    }
    case "broker-down": {
      const backends = need((region as Partial<ProcessRegionHandle>).backends);
      await backends.brokerDown(1, true);
      return () => backends.brokerDown(1, false);
    }
  }
}

/** persistenceUrl is where a region's persistence service listens. */
function persistenceUrl(r: RegionHandle): string {
  const url = r.services.persistence ?? (r as EmbeddedRegion).local?.urls.persistence;
  if (!url) throw new Error(`no persistence service in ${r.name}`);
  return url;
}

/** delivered says whether every acked send has been shown on every member device. */
function delivered(events: HistoryEvent[], devices: Device[]): boolean {
  const shown = new Map<ClientId, Set<string>>();
  const members = new Map<string, string[]>();
  const acked: Array<{ key: string; conversationId: string }> = [];
  for (const e of events) {
    if (e.ev === "shown") {
      const set = shown.get(e.client) ?? new Set<string>();
      set.add(sendKey(e.message.conversationId, e.message.senderId, e.message.clientMsgId));
      shown.set(e.client, set);
    } else if (e.ev === "conversation") {
      members.set(e.conversationId, e.members);
    } else if (e.ev === "ack") {
      acked.push({
        key: sendKey(e.message.conversationId, e.message.senderId, e.message.clientMsgId),
        conversationId: e.message.conversationId,
      });
    }
  }
  return acked.every(({ key, conversationId }) =>
    devices
      .filter((d) => members.get(conversationId)?.includes(d.user))
      .every((d) => shown.get(d.id)?.has(key)),
  );
}

/** plan lays out users, their devices and their conversations. */
function plan(opts: ChaosOptions) {
  const users = Array.from({ length: opts.users }, (_, i) => `u${String(i).padStart(3, "0")}`);
  const devices = users.flatMap((user, i) => [
    { user, device: "phone" },
    ...(opts.secondDeviceEvery > 0 && i % opts.secondDeviceEvery === 0
      ? [{ user, device: "laptop" }]
      : []),
  ]);
  const conversations: Array<{ kind: "direct" | "group"; title: string; members: string[] }> = [];
  for (let i = 0; i + 1 < users.length; i += 2) {
    conversations.push({
      kind: "direct",
      title: "",
      members: [users[i] as string, users[i + 1] as string],
    });
  }
  for (let g = 0; g < opts.groups; g++) {
    const members = Array.from(
      { length: Math.min(opts.groupSize, users.length) },
      (_, k) => users[(g * 3 + k * 5) % users.length] as string,
    );
    conversations.push({ kind: "group", title: `g${g}`, members: [...new Set(members)] });
  }
  return { devices, conversations };
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
