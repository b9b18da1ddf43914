// A benchmark target: a Connect Chat region in production's shape, every service its own
// process (`node services/<name>/main.ts`, as an ECS task runs it) calling each other over HTTP/2 on loopback,
// with redis-server and librdkafka's mock Kafka as the registry and the bus. Persistence keeps
// its store in memory (CHAT_STORE=memory) rather than on DynamoDB Local: the emulator (a JVM on
// the same core) manages a few writes per second and would hide everything else. One gateway
// task and one messaging task: this machine has two cores, one of them for the load.
//
// This process is only the launcher (and the development token issuer); the CPU figures add up
// every process of its tree, split by service and backend (procfs.ts), and the service
// processes load a probe (probe-preload.ts) for their collections and allocation.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { startProcessRegion } from "../../dev/region.ts";
import { TOPICS } from "../../services/shared/topics.ts";
import { memoryWindows, runTarget } from "./harness.ts";
import type { Counts } from "./metrics.ts";
import { scrapeServices } from "./metrics.ts";
import type { ProcessCounters } from "./probe.ts";
import type { TargetMemory } from "./protocol.ts";

const PRELOAD = fileURLToPath(new URL("./probe-preload.ts", import.meta.url));

await runTarget(async () => {
  const probeDir = mkdtempSync(join(tmpdir(), "bench-probes-"));
  const region = await startProcessRegion({
    region: "bench",
    store: "memory",
    tasks: { gateways: 1, messaging: 1 },
    messagingProxy: false,
    env: {
      LOG_LEVEL: "warn",
      // As connect-chat-real: the bus's consumers poll often enough for interactive latency.
      KAFKA_MAX_WAIT_MS: "20",
      ...memoryWindows(),
      BENCH_PROBE_DIR: probeDir,
      NODE_OPTIONS: nodeOptions(),
    },
  });
  const gateway = region.process("gateway-1");
  const metricsUrls = [
    `http://127.0.0.1:${gateway.env.ADMIN_PORT}/metrics`,
    ...["messaging-1", "notification", "persistence"].map(
      (n) => `${region.process(n).url}/metrics`,
    ),
  ];
  const brokers = (gateway.env.KAFKA_BROKERS ?? "").split(",");
  const admin = new Kafka({ clientId: "bench", brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const probes = readProbes(probeDir);
  return {
    url: region.gatewayUrls[0] as string,
    description:
      "Connect Chat as separate processes (gateway, messaging, notification, persistence; Connect over HTTP/2 on loopback) on redis-server and mock Kafka, store in memory",
    tokens: (users) => Promise.all(users.map((u) => region.issuer.token(u))),
    async counters() {
      const [work, busPublished, processes] = await Promise.all([
        scrapeServices(metricsUrls),
        published(admin),
        sampleProbes(probes),
      ]);
      return { ...work, busPublished, processes };
    },
    async memory(of) {
      if (of === "connections") return ask<TargetMemory>(probes, "gateway", "/memory");
      const all = await Promise.all(
        [...probes.keys()].map((s) => ask<TargetMemory>(probes, s, "/memory")),
      );
      return {
        rssBytes: all.reduce((n, m) => n + m.rssBytes, 0),
        heapUsedBytes: all.reduce((n, m) => n + m.heapUsedBytes, 0),
        externalBytes: all.reduce((n, m) => n + m.externalBytes, 0),
      };
    },
    async stop() {
      await admin.disconnect().catch(() => undefined);
      await region.stop();
      rmSync(probeDir, { recursive: true, force: true });
    },
  };
});

/**
 * nodeOptions are the service processes' extra Node flags: the probe, garbage collection on
 * demand (for the idle memory figure), and what the benchmark asks of its targets (a CPU
 * profile with --profile, BENCH_TARGET_NODE_FLAGS).
 */
function nodeOptions(): string {
  const profile = process.env.BENCH_PROFILE_DIR;
  return [
    `--import=${PRELOAD}`,
    "--expose-gc",
    ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []),
    ...(process.env.BENCH_TARGET_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
  ].join(" ");
}

/** readProbes finds each service's probe socket, by service name (from the task's INSTANCE_ID). */
function readProbes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of readdirSync(dir)) {
    // bench-gateway-1.sock → gateway
    out.set(file.replace(/^bench-/, "").replace(/(-\d+)?\.sock$/, ""), join(dir, file));
  }
  for (const s of ["gateway", "messaging", "notification", "persistence"]) {
    if (!out.has(s)) throw new Error(`no probe in the ${s} process`);
  }
  return out;
}

/** ask GETs `path` from a service's probe and parses its JSON answer. */
function ask<T>(probes: Map<string, string>, service: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: probes.get(service), path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => {
        if (res.statusCode === 200) resolve(JSON.parse(body) as T);
        else reject(new Error(`${service} probe ${path}: ${res.statusCode} ${body}`));
      });
    });
    req.on("error", reject);
    req.end();
  });
}

async function sampleProbes(probes: Map<string, string>): Promise<Record<string, ProcessCounters>> {
  const entries = await Promise.all(
    [...probes.keys()].map(
      async (service) =>
        [service, await ask<ProcessCounters>(probes, service, "/counters")] as const,
    ),
  );
  return Object.fromEntries(entries);
}
/**
 * published reads how many records each topic holds: the sum of its partitions' high-water
 * offsets (the mock cluster starts every partition at 0 and deletes nothing).
 */
async function published(admin: Admin): Promise<Counts> {
  const out: Counts = {};
  await Promise.all(
    Object.values(TOPICS).map(async (t) => {
      const offsets = await admin.fetchTopicOffsets(t.name);
      out[t.name] = offsets.reduce((n, p) => n + Number(p.high), 0);
    }),
  );
  return out;
}
