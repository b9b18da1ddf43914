// Loaded into every service process of a multi-process target (NODE_OPTIONS=--import): a
// Probe of the process's collections and allocation, answered over HTTP on a Unix socket in
// BENCH_PROBE_DIR named after the task (INSTANCE_ID): not a TCP port, which could take one the
// region picked for a service that has not started yet. The services' own /metrics has no
// allocation figure, and the service code stays untouched.
//
//   GET /counters  → ProcessCounters (probe.ts)
//   GET /memory    → TargetMemory after two full collections (needs --expose-gc)
import { createServer } from "node:http";
import { join } from "node:path";
import { Probe } from "./probe.ts";
import type { TargetMemory } from "./protocol.ts";

const dir = process.env.BENCH_PROBE_DIR;
if (dir) {
  const probe = new Probe();
  const server = createServer((req, res) => {
    let body: unknown;
    try {
      if (req.url === "/counters") {
        body = probe.sample();
      } else if (req.url === "/memory") {
        probe.sample(); // empties the probe's records, which would otherwise count as memory
        body = memory();
      } else {
        res.writeHead(404).end();
        return;
      }
    } catch (err) {
      res.writeHead(500).end(String(err));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  });
  server.listen(join(dir, `${process.env.INSTANCE_ID ?? process.pid}.sock`));
  // The probe must not keep a service that is done from exiting.
  server.unref();
}

function memory(): TargetMemory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the service must run with --expose-gc");
  gc();
  gc();
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external };
}
