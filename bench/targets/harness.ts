import { Probe } from "./probe.ts";
import type {
  MemoryScope,
  TargetCounters,
  TargetMemory,
  TargetMessage,
  TargetRequest,
} from "./protocol.ts";

/** Started is a target server that is up: where clients connect, and how to stop it. */
export interface Started {
  /** url is the WebSocket (or Socket.IO) URL clients connect to. */
  url: string;
  /** description says what runs, for the results. */
  description: string;
  /** tokens returns what each user presents to authenticate (the user id when there is no auth). */
  tokens(users: string[]): Promise<string[]>;
  /**
   * counters, for targets with services, reads their work so far (RPCs, bus records) and the
   * collections of processes other than this one; the harness adds its own.
   */
  counters?(): Promise<Partial<TargetCounters>>;
  /**
   * memory, for targets of several processes, collects garbage and reads memory in the one
   * holding the connections (a gateway task), or with "all" in every one, summed; by default,
   * this process's.
   */
  memory?(of: MemoryScope): Promise<TargetMemory>;
  stop(): Promise<void>;
}

/**
 * runTarget is the entry of a target process: it starts the server, reports where it listens,
 * and answers the benchmark's requests over IPC until told to stop (or the parent goes away).
 */
export async function runTarget(start: () => Promise<Started>): Promise<void> {
  const send = (m: TargetMessage) => process.send?.(m);
  if (!process.send) throw new Error("a benchmark target runs as a child of `npm run bench`");
  // From the start, so that every collection of the run is seen.
  const probe = new Probe();
  let started: Started;
  try {
    started = await start();
  } catch (err) {
    send({
      type: "failed",
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    process.exit(1);
  }
  const stop = async () => {
    await started.stop().catch(() => undefined);
    process.exit(0);
  };
  process.on("disconnect", stop);
  process.on("SIGTERM", stop);
  process.on("message", async (req: TargetRequest) => {
    try {
      if (req.type === "tokens") {
        send({ type: "reply", id: req.id, tokens: await started.tokens(req.users) });
      } else if (req.type === "memory") {
        // Sampling first empties the probe's records, which would otherwise count as memory.
        probe.sample();
        const of = req.of ?? "connections";
        const memory = started.memory ? await started.memory(of) : collectMemory();
        send({ type: "reply", id: req.id, memory });
      } else if (req.type === "counters") {
        const own = probe.sample();
        const theirs = (await started.counters?.()) ?? {};
        const counters: TargetCounters = {
          processes: { target: own, ...theirs.processes },
          rpcs: theirs.rpcs ?? {},
          busPublished: theirs.busPublished ?? {},
          busConsumed: theirs.busConsumed ?? {},
        };
        send({ type: "reply", id: req.id, counters });
      } else if (req.type === "stop") {
        await started.stop();
        send({ type: "reply", id: req.id });
        process.exit(0);
      }
    } catch (err) {
      send({ type: "reply", id: req.id, error: String(err) });
    }
  });
  send({ type: "ready", url: started.url, description: started.description });
}

function collectMemory(): TargetMemory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("the target must run with --expose-gc");
  // Twice: the first collection's finalizers free more for the second.
  gc();
  gc();
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external };
}

/**
 * memoryWindows is the embedded stores' windows the benchmark was given (`--store-window`),
 * as the environment a Connect Chat target's persistence reads.
 */
export function memoryWindows(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const name of ["MEMORY_HISTORY_MINUTES", "MEMORY_INBOX_MINUTES"]) {
    if (process.env[name] !== undefined) out[name] = process.env[name];
  }
  return out;
}
