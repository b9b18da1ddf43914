import * as vega from "vega";
import * as vl from "vega-lite";
import type { BenchResults } from "./results.ts";

/** chart draws send→delivery latency (p50 and p99) against offered deliveries/s, per target. */
export async function chart(r: BenchResults): Promise<string> {
  const values = r.targets.flatMap((t) =>
    (t.sweep?.steps ?? []).flatMap((s) => [
      {
        target: t.name,
        percentile: "p99",
        offered: s.offeredDeliveriesPerSecond,
        latency: Math.max(0.01, s.delivery.p99),
      },
      {
        target: t.name,
        percentile: "p50",
        offered: s.offeredDeliveriesPerSecond,
        latency: Math.max(0.01, s.delivery.p50),
      },
    ]),
  );
  const spec: vl.TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "send → delivery latency against offered load",
      subtitle: `${r.params.connections} connections, groups of ${r.params.groupSize}; ${r.machine.cores} cores (${r.machine.cpu})`,
    },
    width: 640,
    height: 360,
    background: "white",
    data: { values },
    mark: { type: "line", point: true },
    encoding: {
      x: {
        field: "offered",
        type: "quantitative",
        title: "offered deliveries per second",
        scale: { type: "log" },
      },
      y: {
        field: "latency",
        type: "quantitative",
        title: "latency (ms, log scale)",
        scale: { type: "log" },
      },
      color: { field: "target", type: "nominal", title: "target" },
      strokeDash: { field: "percentile", type: "nominal", title: "percentile" },
      detail: { field: "percentile" },
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}
