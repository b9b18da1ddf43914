import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

/** Metrics is the Prometheus registry of one service plus the RPC instruments every service has. */
export interface Metrics {
  readonly registry: Registry;
  readonly rpcDuration: Histogram<"method" | "code">;
  readonly consumed: Counter<"topic" | "outcome">;
}

/** createMetrics creates a registry with process metrics and the shared RPC and bus instruments. */
export function createMetrics(service: string, opts: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    rpcDuration: new Histogram({
      name: "chat_rpc_duration_seconds",
      help: "Duration of RPCs served, by method and gRPC code.",
      labelNames: ["method", "code"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    consumed: new Counter({
      name: "chat_bus_records_total",
      help: "Bus records consumed, by topic and outcome (ok, poison, retried).",
      labelNames: ["topic", "outcome"],
      registers: [registry],
    }),
  };
}
