import type { Target } from "../targets/launch.ts";
import { closeClients, connectClients, type Generator } from "./clients.ts";

/** IdleResult is the memory a target holds per idle, authenticated connection. */
export interface IdleResult {
  connections: number;
  warmupConnections: number;
  connectSeconds: number;
  /** rss of the target's Node process after GC, before and with the connections open. */
  rssBeforeBytes: number;
  rssAfterBytes: number;
  /** perConnectionBytes is the RSS growth per connection. */
  perConnectionBytes: number;
  heapPerConnectionBytes: number;
  externalPerConnectionBytes: number;
  /** treePerConnectionBytes adds the target's child processes (Redis, DynamoDB Local, Kafka). */
  treePerConnectionBytes: number;
}

/**
 * measureIdle opens `n` connections that then stay idle, and reads how much the target grew.
 * A warm-up wave of connections, opened and closed first, grows what a process grows once
 * (allocator pools, the young generation, compiled code, RPC sessions), so that it is not
 * counted as a cost per connection.
 */
export async function measureIdle(
  target: Target,
  n: number,
  progress?: (line: string) => void,
  generator: Generator = "light",
): Promise<IdleResult> {
  const settle = () => new Promise((r) => setTimeout(r, 3_000));
  const open = (prefix: string, count: number) =>
    connectClients(
      target,
      Array.from({ length: count }, (_, i) => `${prefix}${i}`),
      {
        generator,
        concurrency: 100,
        progress: (k) => {
          if (k % 500 === 0) progress?.(`${k}/${count} ${prefix} connections open`);
        },
      },
    );
  const warmup = Math.min(1_000, Math.ceil(n / 10));
  await closeClients(await open("warmup", warmup));
  await settle();
  const before = await target.memory();
  const treeBefore = target.usage().rssBytes;
  const started = Date.now();
  const clients = await open("idle", n);
  const connectSeconds = (Date.now() - started) / 1000;
  progress?.(`${n} idle connections open; letting the target settle`);
  await settle();
  const after = await target.memory();
  const treeAfter = target.usage().rssBytes;
  progress?.(`closing ${n} connections`);
  await closeClients(clients);
  const per = (a: number, b: number) => Math.round((a - b) / n);
  return {
    connections: n,
    warmupConnections: warmup,
    connectSeconds,
    rssBeforeBytes: before.rssBytes,
    rssAfterBytes: after.rssBytes,
    perConnectionBytes: per(after.rssBytes, before.rssBytes),
    heapPerConnectionBytes: per(after.heapUsedBytes, before.heapUsedBytes),
    externalPerConnectionBytes: per(after.externalBytes, before.externalBytes),
    treePerConnectionBytes: per(treeAfter, treeBefore),
  };
}
