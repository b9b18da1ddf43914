// `npm run dev:region`: a region as separate processes on real local backends.
import { startProcessRegion } from "./region.ts";

const region = await startProcessRegion({ log: (line) => process.stdout.write(`${line}\n`) });
process.stdout.write(
  [
    "",
    `Region "${region.region}" runs as separate processes on DynamoDB Local, redis-server and mock Kafka.`,
    `  Clients connect to   ${region.gatewayUrls.join("  or  ")}`,
    `  Get a dev token      curl '${region.issuer.url}/token?user=alice'`,
    `  Chat                 npm run chat -- --user alice --url ${region.gatewayUrls[0]} --issuer ${region.issuer.url}`,
    "  Services:",
    ...[...region.processes.values()].map((p) => `    ${p.name.padEnd(13)} ${p.url}`),
    "",
    "  Ctrl-C stops everything.",
    "",
  ].join("\n"),
);
let stopping = false;
const stop = async () => {
  if (stopping) process.exit(1);
  stopping = true;
  await region.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
