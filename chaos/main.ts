// `npm run chaos`: two regions under load while every fault plays out, then the histories
// checked. Writes the report to a results folder (committed) and the histories beside it.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { formatReport } from "./report.ts";
import {
  CHAOS_ENV,
  CHAOS_REPLICATION,
  type ChaosOptions,
  type FaultPlan,
  runChaos,
} from "./run.ts";

const USAGE = `usage: npm run chaos -- [--embedded] [--users N] [--rate N] [--load S] [--out DIR]

  --embedded   both regions in this process on embedded backends (quick); by default every
               service is its own process on each region's DynamoDB Local, redis-server and
               mock Kafka (three brokers), and every fault is injected
  --users N    simulated users (default 120; every fourth has a second device)
  --rate N     sends per second over all devices, open loop (default 5)
  --load S     seconds of load; the faults happen within it (default 240)
  --out DIR    where the report goes (default chaos/results/<date>); the histories go to
               chaos/results/local/<date>/ (not committed)`;

let values: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      embedded: { type: "boolean", default: false },
      users: { type: "string", default: "120" },
      rate: { type: "string", default: "5" },
      load: { type: "string", default: "240" },
      out: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}
try {
  values = parse();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const int = (name: string, v: string | undefined, min: number, max: number) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`--${name}: must be a whole number from ${min} to ${max}, got ${v}\n`);
    process.exit(2);
  }
  return n;
};
const users = int("users", values.users, 4, 2_000);
const rate = int("rate", values.rate, 1, 1_000);
const loadMs = int("load", values.load, 30, 3_600) * 1000;
const embedded = values.embedded;

// The faults, spread over the load: each region's death and freeze, a partition, then the
// smaller faults of one region's parts. A freeze and a broker of several need processes.
const at = (fraction: number) => Math.round(loadMs * fraction);
const span = Math.round(loadMs * 0.08);
const faults: FaultPlan[] = embedded
  ? [
      { kind: "region-kill", region: "us-east-1", atMs: at(0.08), durationMs: span },
      { kind: "region-kill", region: "eu-west-1", atMs: at(0.3), durationMs: span },
      { kind: "partition", atMs: at(0.55), durationMs: span },
    ]
  : [
      { kind: "region-kill", region: "us-east-1", atMs: at(0.05), durationMs: span },
      { kind: "region-freeze", region: "eu-west-1", atMs: at(0.2), durationMs: span },
      { kind: "partition", atMs: at(0.37), durationMs: span },
      { kind: "gateway-kill", region: "us-east-1", atMs: at(0.53), durationMs: span / 2 },
      { kind: "messaging-kill", region: "eu-west-1", atMs: at(0.63), durationMs: span / 2 },
      { kind: "broker-down", region: "us-east-1", atMs: at(0.73), durationMs: span },
    ];

const stamp = new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-");
const out = values.out ?? join("chaos", "results", `${stamp}${embedded ? "-embedded" : ""}`);
const local = join("chaos", "results", "local", stamp);
mkdirSync(out, { recursive: true });
mkdirSync(local, { recursive: true });
const options: ChaosOptions = {
  mode: embedded ? "embedded" : "processes",
  users,
  groups: Math.max(1, Math.floor(users / 8)),
  groupSize: 5,
  secondDeviceEvery: 4,
  sendsPerSecond: rate,
  loadMs,
  faults,
  settleMs: 120_000,
  farMs: 40,
  kafkaBrokers: embedded ? undefined : 3,
  historyFile: join(local, "histories.jsonl"),
  logsDir: join(local, "logs"),
  log: (line) => process.stdout.write(`[${((Date.now() - began) / 1000).toFixed(1)}s] ${line}\n`),
};
const began = Date.now();
const run = await runChaos(options);
writeFileSync(join(local, "stored.json"), JSON.stringify(run.stored));
const command = `npm run chaos --${embedded ? " --embedded" : ""} --users ${users} --rate ${rate} --load ${loadMs / 1000}`;
const commit = (() => {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
})();
const report = [
  formatReport(run.report),
  "",
  "## The run",
  "",
  `- command: \`${command}\``,
  `- commit ${commit}; ${new Date(began).toISOString()}; took ${Math.round(run.durationMs / 1000)} s`,
  `- machine: ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
  `- regions: ${options.mode === "processes" ? "every service its own process (2 gateways, 2 messaging, notification, persistence per region), each region on its own DynamoDB Local, redis-server and mock Kafka of 3 brokers" : "both in one process on embedded backends"}; table replication ${CHAOS_REPLICATION.table.delayMs} ms (+0..${CHAOS_REPLICATION.table.jitterMs} ms), topic mirror ${CHAOS_REPLICATION.topics.delayMs} ms (dev/replication)`,
  `- load: ${run.clients} devices of ${users} users in ${run.conversations} conversations, ${rate} sends/s open loop for ${loadMs / 1000} s; each device near one region (no added latency) and ${options.farMs} ms from the other`,
  `- clocks: ${Object.entries(CHAOS_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ")}`,
  `- faults: ${faults.map((f) => `${f.kind}${f.region ? ` ${f.region}` : ""} at +${f.atMs / 1000} s for ${f.durationMs / 1000} s`).join("; ")}`,
  `- histories: ${run.events.length} events in ${join(local, "histories.jsonl")} (not committed), stores in ${join(local, "stored.json")}; check them again with \`node chaos/recheck.ts ${local}\``,
  "",
].join("\n");
writeFileSync(join(out, "report.md"), report);
const { violations, ...summary } = run.report;
writeFileSync(
  join(out, "summary.json"),
  `${JSON.stringify({ command, commit, options: { ...options, log: undefined }, ...summary, violations: violations.slice(0, 100) }, null, 2)}\n`,
);
process.stdout.write(`\n${report}\nreport written to ${out}/report.md\n`);
process.exit(run.report.ok ? 0 : 1);
