import type { Bus } from "../../services/shared/ports/bus.ts";

/**
 * Reading a Connect Chat region's work from the outside: the RPCs its services served and the
 * bus records they consumed (their Prometheus /metrics, services/shared/metrics.ts), and the bus
 * records published (counted around the bus in one process, or read from Kafka's offsets).
 */

/** Counts are cumulative counts by name (an RPC method, a topic). */
export type Counts = Record<string, number>;

/** ServiceWork is what a region's services did so far, cumulative. */
export interface ServiceWork {
  /** rpcs: RPCs served, by `service/Method` (with ` <code>` appended when it failed). */
  rpcs: Counts;
  /** busConsumed: records handled by every consumer group, by topic. */
  busConsumed: Counts;
}

/** scrapeServices reads and adds up the RPC and bus counters of every /metrics URL given. */
export async function scrapeServices(metricsUrls: string[]): Promise<ServiceWork> {
  const work: ServiceWork = { rpcs: {}, busConsumed: {} };
  const texts = await Promise.all(
    metricsUrls.map(async (url) => {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
      return res.text();
    }),
  );
  for (const text of texts) addMetrics(text, work);
  return work;
}

/** addMetrics adds one Prometheus text exposition's RPC and bus counters to `work`. */
export function addMetrics(text: string, work: ServiceWork): void {
  for (const line of text.split("\n")) {
    const m = /^(chat_rpc_duration_seconds_count|chat_bus_records_total)\{([^}]*)\} (\S+)$/.exec(
      line,
    );
    if (!m) continue;
    const labels = parseLabels(m[2] as string);
    const value = Number(m[3]);
    if (m[1] === "chat_rpc_duration_seconds_count") {
      const method = shortMethod(labels.method ?? "?");
      const key = labels.code === "ok" ? method : `${method} ${labels.code}`;
      add(work.rpcs, key, value);
    } else {
      const topic = labels.topic ?? "?";
      add(work.busConsumed, labels.outcome === "ok" ? topic : `${topic} ${labels.outcome}`, value);
    }
  }
}

function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of s.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1] as string] = m[2] as string;
  return out;
}

/** shortMethod drops the package: "chat.v1.MessagingService/Send" → "MessagingService/Send". */
function shortMethod(method: string): string {
  return method.replace(/^[a-z0-9.]*\./, "");
}

function add(counts: Counts, key: string, n: number) {
  counts[key] = (counts[key] ?? 0) + n;
}

/**
 * countPublished wraps a bus so that every record published through it is counted by topic
 * in `counts`: the services in one process share one bus, so this sees all they publish.
 */
export function countPublished(bus: Bus, counts: Counts): Bus {
  return {
    publish(topic, records) {
      add(counts, topic, records.length);
      return bus.publish(topic, records);
    },
    subscribe: (opts) => bus.subscribe(opts),
    consumers: () => bus.consumers(),
    close: () => bus.close(),
  };
}
