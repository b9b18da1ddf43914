// `npm run dev:regions`: two regions, active-active, on this machine. `-- --real` runs every
// service as its own process on each region's own DynamoDB Local, redis-server and mock Kafka.
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { regionsControl, startWebClient, type WebClientServer } from "../web-client.ts";
import { startEmbeddedRegions } from "./embedded.ts";
import { startProcessRegions } from "./processes.ts";
import { REGION_NAMES, type Regions } from "./regions.ts";

const USAGE = `usage: npm run dev:regions -- [--real] [--delay <ms>] [--jitter <ms>] [--mirror-delay <ms>]

  --real              every service its own process, each region on its own DynamoDB Local,
                      redis-server and mock Kafka (needs Java 17, redis-server, librdkafka1)
  --delay <ms>        table replication delay (default 200)
  --jitter <ms>       extra random table delay, reordering items (default 100)
  --mirror-delay <ms> topic mirror delay (default 50)`;

const HELP = `commands:
  kill <region>     take a region down at once (every process SIGKILLed, no drain)
  start <region>    bring it back over its data
  partition / heal  stop / resume all replication between the regions
  lag               replication lag of every direction
  help              this text
  quit              stop everything`;

let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    options: {
      real: { type: "boolean", default: false },
      delay: { type: "string", default: "200" },
      jitter: { type: "string", default: "100" },
      "mirror-delay": { type: "string", default: "50" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
}
try {
  args = parse();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n\n${HELP}\n`);
  process.exit(0);
}
const ms = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 600_000) {
    process.stderr.write(`--${name}: must be whole milliseconds between 0 and 600000, got ${v}\n`);
    process.exit(2);
  }
  return n;
};
const replication = {
  table: { delayMs: ms("delay", args.delay), jitterMs: ms("jitter", args.jitter) },
  topics: { delayMs: ms("mirror-delay", args["mirror-delay"]) },
};
const say = (line: string) => process.stdout.write(`${line}\n`);

let regions: Regions;
try {
  regions = args.real
    ? await startProcessRegions({ replication, log: say })
    : await startEmbeddedRegions({
        replication,
        log: "stdout",
        env: { LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" },
        issuerPort: 8090,
        ports: REGION_NAMES.map((_, i) => ({
          gateway: 8080 + i * 1000,
          gatewayAdmin: 8084 + i * 1000,
          messaging: 8081 + i * 1000,
          notification: 8082 + i * 1000,
          persistence: 8083 + i * 1000,
          issuer: 0,
        })),
      });
} catch (err) {
  process.stderr.write(`could not start the regions: ${(err as Error).message}\n`);
  process.exit(1);
}

// The web client, on its own development-only port: it measures the regions, connects to the
// nearest and fails over to the other, showing the region it is on.
let web: WebClientServer | undefined;
let webNote = "";
try {
  web = await startWebClient({
    port: Number(process.env.WEB_PORT ?? 8085),
    regions: regions.regions.map((r) => ({ name: r.name, url: r.gatewayUrls[0] as string })),
    issuerUrl: regions.issuer.url,
    control: regionsControl(regions),
  });
} catch (err) {
  webNote = `the web client did not start: ${(err as Error).message}`;
}

const list = regions.regions.map((r) => `${r.name}=${r.gatewayUrls[0]}`).join(",");
say(
  [
    "",
    `Connect Chat: ${regions.regions.length} regions, active-active, ${
      regions.mode === "embedded"
        ? "in this process on embedded backends"
        : "every service its own process on real local backends"
    }.`,
    "",
    ...regions.regions.map(
      (r) => `  ${r.name.padEnd(10)} clients connect to ${r.gatewayUrls.join("  or  ")}`,
    ),
    `  Web client            ${web ? `${web.url}/   (fails over between the regions; kill one to see it move)` : webNote}`,
    ...(web
      ? [`  Regions view          ${web.url}/regions   (health, lag, devices; kill and restore)`]
      : []),
    `  Get a dev token       curl '${regions.issuer.url}/token?user=alice'   (every region trusts it)`,
    "  Chat, failing over between the regions:",
    `    npm run chat -- --user alice --regions ${list} --issuer ${regions.issuer.url}`,
    `    npm run chat -- --user bob   --regions ${[...regions.regions]
      .reverse()
      .map((r) => `${r.name}=${r.gatewayUrls[0]}`)
      .join(",")} --issuer ${regions.issuer.url}`,
    "",
    `  Replication: table ${replication.table.delayMs} ms (+0..${replication.table.jitterMs} ms), topics ${replication.topics.delayMs} ms.`,
    "",
    HELP,
    "",
  ].join("\n"),
);

let stopping = false;
const stop = async () => {
  if (stopping) process.exit(1);
  stopping = true;
  say("stopping…");
  await web?.close();
  await regions.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

const rl = createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  const run = async () => {
    switch (cmd) {
      case "":
      case undefined:
        return;
      case "kill":
      case "start": {
        const r = regions.regions.find((x) => x.name === arg);
        if (!r)
          return say(
            `no region ${arg ?? ""}; regions: ${regions.regions.map((x) => x.name).join(", ")}`,
          );
        await (cmd === "kill" ? r.kill() : r.start());
        return say(`${r.name} is ${r.up ? "up" : "down"}`);
      }
      case "partition":
        regions.partition();
        return say("replication between the regions stopped (both keep serving)");
      case "heal":
        regions.heal();
        return say("replication resumed");
      case "lag":
        for (const l of regions.lag()) {
          say(
            `  ${l.name.padEnd(32)} ${l.paused ? "paused " : "running"} pending ${l.pending}, oldest ${l.oldestMs} ms, applied ${l.applied}${l.error ? `, FAILED: ${l.error}` : ""}`,
          );
        }
        return;
      case "help":
        return say(HELP);
      case "quit":
        return stop();
      default:
        return say(`unknown command ${cmd}; type help`);
    }
  };
  run().catch((err: Error) => say(`error: ${err.message}`));
});
