// `npm run bench`: Connect Chat side by side with a raw `ws` server and Socket.IO, on this
// machine. See bench/README.md for what is measured and how to read it.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { requireLibrary, requireProgram } from "../dev/backends/processes.ts";
import { closeClients, connectClients, type Generator } from "./load/clients.ts";
import { measureIdle } from "./load/idle.ts";
import { soak, soakTable } from "./load/soak.ts";
import { type Group, Load } from "./load/step.ts";
import { sweep } from "./load/sweep.ts";
import { WireStats } from "./load/wire-stats.ts";
import { pin } from "./procfs.ts";
import { chart } from "./report/chart.ts";
import type { BenchParams, BenchResults, TargetResult } from "./report/results.ts";
import { summarize } from "./report/summary.ts";
import { launchTarget, TARGETS, type TargetName } from "./targets/launch.ts";

const USAGE = `npm run bench -- [options]

  --targets LIST        comma-separated, of ${Object.keys(TARGETS).join(", ")} (default: all)
  --generator KIND      light: pre-encoded frames, only what the load needs is decoded (default);
                        sdk: the Connect Chat SDK and socket.io-client (see bench/README.md)
  --connections N       connections carrying the load (default 1000)
  --group-size N        members per conversation; each send reaches all of them (default 10)
  --message-bytes N     text length (default 100)
  --start-rate N        first offered rate, in sends per second (default 250; connect-chat-real
                        starts at 1/32 of it: DynamoDB Local shares its core; connect-chat-mesh
                        at 1/8: its processes share one core)
  --max-steps N         steps per target in the search for the highest sustained rate (default 9)
  --warmup S            seconds of warm-up per step (default 2)
  --duration S          seconds measured per step (default 8)
  --slo-p99-ms MS       p99 send→delivery beyond which latency counts as broken (default 100)
  --idle-connections N  idle connections for the memory measurement; 0 skips it (default 15000)
  --out DIR             where results.json, summary.md and chart.svg go (default bench/results/local)
  --profile DIR         write a CPU profile of each target run (node --cpu-prof) into DIR
  --no-pin              do not pin targets to CPU 0 and the load generator to CPU 1
  --quick               a small, fast run (to check the benchmark works)
  --soak MINUTES        instead of the search: MINUTES one-minute windows at --rate, reporting
                        latency, losses, memory and CPU per window (writes soak.md too)
  --rate N              the soak's offered rate, in sends per second
  --store-window MIN    keep MIN minutes of history and inbox in the embedded stores of
                        connect-chat and connect-chat-mesh (MEMORY_HISTORY_MINUTES and
                        MEMORY_INBOX_MINUTES; default theirs, a day): a soak longer than the
                        window shows the memory it settles at
`;

const { values: a } = parseArgs({
  options: {
    targets: { type: "string" },
    generator: { type: "string" },
    connections: { type: "string" },
    "group-size": { type: "string" },
    "message-bytes": { type: "string" },
    "start-rate": { type: "string" },
    "max-steps": { type: "string" },
    warmup: { type: "string" },
    duration: { type: "string" },
    "slo-p99-ms": { type: "string" },
    "idle-connections": { type: "string" },
    out: { type: "string" },
    profile: { type: "string" },
    "no-pin": { type: "boolean" },
    quick: { type: "boolean" },
    soak: { type: "string" },
    rate: { type: "string" },
    "store-window": { type: "string" },
    help: { type: "boolean" },
  },
  strict: true,
});
if (a.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const quick = a.quick === true;
const num = (name: string, value: string | undefined, fallback: number, min: number): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) {
    process.stderr.write(`--${name}: expected a number ≥ ${min}, got "${value}"\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const targetNames = (a.targets ?? Object.keys(TARGETS).join(",")).split(",").map((s) => s.trim());
for (const t of targetNames) {
  if (!(t in TARGETS)) {
    process.stderr.write(`--targets: unknown target "${t}"\n\n${USAGE}`);
    process.exit(2);
  }
}
const generator = (a.generator ?? "light") as Generator;
if (generator !== "light" && generator !== "sdk") {
  process.stderr.write(`--generator: expected light or sdk, got "${a.generator}"\n\n${USAGE}`);
  process.exit(2);
}
const twoCpus = cpus().length >= 2;
const params: BenchParams = {
  generator,
  connections: num("connections", a.connections, quick ? 40 : 1000, 2),
  groupSize: num("group-size", a["group-size"], quick ? 4 : 10, 2),
  messageBytes: num("message-bytes", a["message-bytes"], 100, 1),
  startSendsPerSecond: num("start-rate", a["start-rate"], quick ? 50 : 250, 1),
  maxSteps: num("max-steps", a["max-steps"], quick ? 2 : 9, 1),
  warmupSeconds: num("warmup", a.warmup, quick ? 0.5 : 2, 0),
  durationSeconds: num("duration", a.duration, quick ? 1 : 8, 0.5),
  sloP99Ms: num("slo-p99-ms", a["slo-p99-ms"], 100, 1),
  idleConnections: num("idle-connections", a["idle-connections"], quick ? 100 : 15_000, 0),
  pinned: a["no-pin"] !== true && twoCpus,
};
if (params.connections % params.groupSize !== 0) {
  process.stderr.write("--connections must be a multiple of --group-size\n");
  process.exit(2);
}
const outDir = a.out ?? join(import.meta.dirname, "results", "local");
const soakMinutes = a.soak === undefined ? 0 : num("soak", a.soak, 10, 1);
const soakRate = num("rate", a.rate, 0, 0);
if (soakMinutes > 0 && soakRate < 1) {
  process.stderr.write("--soak needs --rate (sends per second)\n");
  process.exit(2);
}
const soaks: string[] = [];
if (a["store-window"] !== undefined) {
  // The targets pass MEMORY_* on to the persistence they run.
  const minutes = String(num("store-window", a["store-window"], 1_440, 1));
  process.env.MEMORY_HISTORY_MINUTES = minutes;
  process.env.MEMORY_INBOX_MINUTES = minutes;
}

const tty = process.stderr.isTTY;
let current = "";
const progress = (line: string) => {
  if (tty) process.stderr.write(`\r\x1b[2K${current} · ${line}`);
  else process.stderr.write(`${current} · ${line}\n`);
};
const say = (line: string) => process.stderr.write(`${tty ? "\r\x1b[2K" : ""}${line}\n`);

if (params.pinned && !pin(process.pid, "1")) params.pinned = false;
const targetOpts = {
  cpus: params.pinned ? "0" : undefined,
  profileDir: a.profile ? resolve(a.profile) : undefined,
};

const results: BenchResults = {
  startedAt: new Date().toISOString(),
  finishedAt: "",
  command: [
    "npm run bench",
    ...(process.argv.length > 2 ? ["--", ...process.argv.slice(2)] : []),
  ].join(" "),
  commit: commit(),
  machine: {
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `Linux ${release()}`,
    node: process.versions.node,
  },
  params,
  targets: [],
};

for (const name of targetNames as TargetName[]) {
  current = name;
  const result: TargetResult = { name, description: "" };
  results.targets.push(result);
  const missing = missingBackends(name);
  if (missing) {
    result.skipped = missing;
    say(`${name}: skipped (${missing})`);
    continue;
  }
  try {
    await run(name, result);
  } catch (err) {
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    say(`${name}: failed: ${result.error}`);
  }
}
results.finishedAt = new Date().toISOString();

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, "chart.svg"), await chart(results));
const summary = summarize(results, "chart.svg");
writeFileSync(join(outDir, "summary.md"), summary);
if (soaks.length > 0) {
  const head = `# Soak\n\n\`${results.command}\`, commit ${results.commit}, ${results.startedAt}\n\n`;
  writeFileSync(join(outDir, "soak.md"), `${head}${soaks.join("\n")}`);
  process.stdout.write(`\n${soaks.join("\n")}`);
}
process.stdout.write(`\n${summary}\nWritten to ${relative(process.cwd(), outDir) || "."}/\n`);
process.exit(results.targets.some((t) => t.error) ? 1 : 0);

/**
 * run measures one target: the throughput sweep, then idle memory on the same (now warm)
 * process, as a gateway that has been serving for a while would be.
 */
async function run(name: TargetName, result: TargetResult) {
  say(`${name}: starting`);
  const target = await launchTarget(name, targetOpts);
  result.description = target.description;
  try {
    const users = Array.from({ length: params.connections }, (_, i) => `u${i}`);
    const wire = new WireStats();
    const clients = await connectClients(target, users, {
      generator,
      wire,
      progress: (n) => {
        if (n % 100 === 0) progress(`${n}/${users.length} connected`);
      },
    });
    const groups: Group[] = [];
    for (let i = 0; i < clients.length; i += params.groupSize) {
      const members = clients.slice(i, i + params.groupSize);
      const [owner, ...others] = members;
      if (!owner) continue;
      groups.push({
        conversationId: await owner.createGroup(others.map((c) => c.userId)),
        members,
      });
    }
    const load = new Load(groups, params.messageBytes, wire);
    await load.quiet(1_000, 10_000);
    if (soakMinutes > 0) {
      const s = await soak(target, load, {
        sendsPerSecond: soakRate,
        minutes: soakMinutes,
        progress,
      });
      soaks.push(soakTable(name, s));
      say(`${name}: soak done, ${s.lost} lost`);
      await closeClients(clients);
      return;
    }
    result.sweep = await sweep(target, load, {
      startSendsPerSecond: Math.max(1, params.startSendsPerSecond * TARGETS[name].startScale),
      maxSteps: params.maxSteps,
      warmupMs: params.warmupSeconds * 1000,
      measureMs: params.durationSeconds * 1000,
      sloP99Ms: params.sloP99Ms,
      progress,
    });
    const max = result.sweep.maxSustained;
    say(
      `${name}: ${max ? `${max.achievedDeliveriesPerSecond} deliveries/s sustained` : "no rate sustained"}`,
    );
    await closeClients(clients);
    if (params.idleConnections > 0) {
      result.idle = await measureIdle(target, params.idleConnections, progress, generator);
      say(`${name}: ${result.idle.perConnectionBytes} bytes per idle connection`);
    }
  } finally {
    await target.stop();
  }
}

/** missingBackends says which backend programs a target needs and this machine lacks. */
function missingBackends(name: TargetName): string {
  if (name !== "connect-chat-real" && name !== "connect-chat-mesh") return "";
  const checks = [
    requireProgram("redis-server", "apt-get install redis-server"),
    ...(name === "connect-chat-real"
      ? [requireProgram("java", "a Java 17 runtime, for DynamoDB Local")]
      : []),
    requireProgram("python3", "apt-get install python3"),
    requireLibrary("librdkafka.so.1", "apt-get install librdkafka1"),
  ];
  return checks
    .filter((c) => !c.available)
    .map((c) => c.why)
    .join("; ");
}

function commit(): string {
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { encoding: "utf8" }).trim();
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return "unknown";
  }
}
