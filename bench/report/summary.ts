import type { StepResult } from "../load/step.ts";
import type { BenchResults, TargetResult } from "./results.ts";

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** GOALS are the targets for Connect Chat on embedded backends, in one region. */
export const GOALS = {
  rawWsShare: 0.5,
  p99AtHalfMaxMs: 20,
  idleBytes: 8 * 1024,
} as const;

/** summarize writes the markdown summary of a run: comparison, goals, and every step. */
export function summarize(r: BenchResults, chartFile: string): string {
  const by = new Map(r.targets.map((t) => [t.name, t]));
  const raw = by.get("raw-ws");
  const sio = by.get("socket.io");
  const p = r.params;
  const lines: string[] = [
    `# Connect Chat benchmark, ${r.startedAt.slice(0, 10)}`,
    "",
    `- Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, ${r.machine.os}, Node ${r.machine.node}.`,
    `- ${p.pinned ? "Each target (and its backends) pinned to CPU 0, the load generator to CPU 1." : "Not pinned: targets and the load generator share every CPU."}`,
    `- Command: \`${r.command}\` at ${r.commit}.`,
    `- Load generator: ${p.generator === "sdk" ? "the client libraries (the Connect Chat SDK over `ws`, socket.io-client)" : "light clients (pre-encoded frames; only the fields the load needs are decoded; deliveries acknowledged in batches as the SDK does)"}.`,
    `- Scenario: ${fmt(p.connections)} connections (one device per user) in groups of ${p.groupSize}; every send reaches all ${p.groupSize} member devices, the sender's included; ${p.messageBytes}-byte texts; open-loop sends at a fixed offered rate, latency measured from the intended send time. Each step: ${p.warmupSeconds} s warm-up, ${p.durationSeconds} s measured. A rate is sustained when ≥ 95% of offered deliveries arrive in the window, none is lost or refused, and p99 send→delivery ≤ ${p.sloP99Ms} ms.`,
    "",
    "| target | max sustained deliveries/s | send→delivery p50 / p99 / p99.9 at half max | send→ack p99 at half max | server CPU s per 1000 deliveries | memory per idle connection |",
    "| --- | --- | --- | --- | --- | --- |",
  ];
  for (const t of r.targets) lines.push(row(t, raw, sio));
  lines.push("");
  for (const t of r.targets) {
    if (t.skipped) lines.push(`- ${t.name} skipped: ${t.skipped}`);
    if (t.error) lines.push(`- ${t.name} failed: ${t.error.split("\n")[0]}`);
  }
  const cc = by.get("connect-chat");
  if (cc?.sweep?.maxSustained) {
    lines.push("", "Goals for Connect Chat on embedded backends:", "", ...goals(cc, raw, sio), "");
  }
  lines.push(...costs(r), "");
  lines.push(`![send→delivery latency against offered load](${chartFile})`, "", "## Targets", "");
  for (const t of r.targets) lines.push(`- **${t.name}**: ${t.description}`);
  lines.push("", "## Every step", "");
  lines.push(
    "| target | offered sends/s | offered deliveries/s | achieved deliveries/s | delivery p50 / p99 (ms) | ack p99 (ms) | send lag p99 (ms) | server CPU | load CPU | load µs / delivery | CPU s / 1000 | verdict | settled after (s) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const t of r.targets) {
    for (const s of t.sweep?.steps ?? []) {
      lines.push(
        `| ${t.name} | ${fmt(s.offeredSendsPerSecond)} | ${fmt(s.offeredDeliveriesPerSecond)} | ${fmt(s.achievedDeliveriesPerSecond)} | ${ms(s.delivery.p50)} / ${ms(s.delivery.p99)} | ${ms(s.ack.p99)} | ${ms(s.sendLag.p99)} | ${s.serverCpuPercent}% | ${s.loadCpuPercent}% | ${s.loadCpuMicrosPerDelivery ?? ""} | ${s.cpuSecondsPer1000Deliveries} | ${s.sustained ? "sustained" : s.why} | ${s.settleSeconds ?? ""} |`,
      );
    }
  }
  lines.push("");
  for (const t of r.targets) {
    const i = t.idle;
    if (!i) continue;
    lines.push(
      `- ${t.name}: ${fmt(i.connections)} idle connections opened in ${i.connectSeconds.toFixed(1)} s (after a warm-up wave of ${fmt(i.warmupConnections)}); server RSS after GC ${mib(i.rssBeforeBytes)} → ${mib(i.rssAfterBytes)}: ${fmt(i.perConnectionBytes)} B per connection (JS heap ${fmt(i.heapPerConnectionBytes)} B, buffers ${fmt(i.externalPerConnectionBytes)} B; with child processes ${fmt(i.treePerConnectionBytes)} B).`,
    );
  }
  lines.push("");
  return lines.join("\n");
}

/**
 * costStep is the step whose costs per send are reported: the one at half the maximum rate
 * (where latency is reported), else the best sustained one, else the one that carried most.
 */
export function costStep(t: TargetResult): StepResult | undefined {
  const sw = t.sweep;
  if (!sw) return undefined;
  if (sw.halfMax) return sw.halfMax;
  if (sw.maxSustained) return sw.maxSustained;
  return [...sw.steps].sort(
    (a, b) => b.achievedDeliveriesPerSecond - a.achievedDeliveriesPerSecond,
  )[0];
}

/** costs is the table of what one send cost each target: work, wire, allocation, CPU split. */
function costs(r: BenchResults): string[] {
  const rows: string[] = [];
  for (const t of r.targets) {
    const s = costStep(t);
    const w = s?.work;
    if (!s || !w) continue;
    const ps = w.perSend;
    const per = (n: number) => (w.sends === 0 ? 0 : n / w.sends);
    const byCount = (c: Record<string, number>) =>
      Object.entries(c)
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k} ${num(per(n))}`)
        .join(", ");
    const gc = Object.values(w.processes);
    const cpuTotal = Object.values(s.serverCpuByProcess ?? {}).reduce((n, x) => n + x, 0);
    const split =
      Object.keys(s.serverCpuByProcess ?? {}).length > 1
        ? Object.entries(s.serverCpuByProcess)
            .sort((a, b) => b[1] - a[1])
            .map(([k, x]) => `${k} ${cpuTotal > 0 ? Math.round((x / cpuTotal) * 100) : 0}%`)
            .join(", ")
        : "";
    const idle = t.sweep?.idle;
    rows.push(
      `| ${t.name} | ${fmt(s.offeredDeliveriesPerSecond)} | ${idle ? `${Math.round(idle.cpuShare * 100)}% CPU, ${(idle.allocatedBytesPerSecond / 2 ** 20).toFixed(1)} MiB/s allocated, ${num(idle.rpcsPerSecond)} RPCs/s` : ""} | ${w.countersError ? `unread: ${w.countersError}` : `${num(ps.rpcs)}${ps.rpcs ? ` (${byCount(w.rpcs)})` : ""}`} | ${num(ps.busPublished)}${ps.busPublished ? ` (${byCount(w.busPublished)}); consumed ${num(ps.busConsumed)}` : ""} | ${num(ps.framesToClients)} / ${fmt(ps.bytesToClients)} B | ${num(ps.framesFromClients)} / ${fmt(ps.bytesFromClients)} B | ${kib(ps.allocatedBytes)} | ${w.gcPauseMsPerSecond} ms/s (${gc.reduce((n, p) => n + p.gcCount, 0)} GCs, ${gc.reduce((n, p) => n + p.fullGcCount, 0)} full) | ${s.loadCpuMicrosPerDelivery} µs | ${split} |`,
    );
  }
  if (rows.length === 0) return [];
  return [
    "What one send cost, at the step where latency is reported (half the maximum rate; else the best step), counted over its window: RPCs served by the services, bus records published (and handled by consumer groups), WebSocket frames and payload bytes written to the clients and read from them, JS heap allocated by the target's Node processes, their collection pauses, the load generator's CPU per delivery, and how the target's CPU split between its processes. Background work (heartbeats, the delivery canary, timers, bus consumers polling) is included: at low rates it weighs on every figure per send; what the target does with its clients connected and no load is shown for scale.",
    "",
    "| target | at offered deliveries/s | target when idle | RPCs per send | bus records per send | to clients per send (frames / bytes) | from clients per send | JS heap allocated per send | GC pauses | load CPU per delivery | target CPU by process |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ];
}

function num(n: number): string {
  return n >= 100 ? fmt(n) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

function row(t: TargetResult, raw?: TargetResult, sio?: TargetResult): string {
  if (t.skipped || t.error) return `| ${t.name} | ${t.skipped ? "skipped" : "failed"} | | | | |`;
  const max = t.sweep?.maxSustained;
  const half = t.sweep?.halfMax;
  const ratio = (mine?: number, theirs?: number) =>
    mine && theirs ? `${(mine / theirs).toFixed(2)}×` : "";
  const vs = (mine: number | undefined, get: (t: TargetResult) => number | undefined) =>
    [raw, sio]
      .filter((o): o is TargetResult => o !== undefined && o.name !== t.name)
      .map((o) => {
        const x = ratio(mine, get(o));
        return x && `${x} ${o.name}`;
      })
      .filter(Boolean)
      .join(", ");
  const maxD = max?.achievedDeliveriesPerSecond;
  const cpu = half?.cpuSecondsPer1000Deliveries;
  const mem = t.idle?.perConnectionBytes;
  const cell = (value: string, comparison: string) =>
    comparison ? `${value} (${comparison})` : value;
  return [
    "",
    t.name,
    max
      ? cell(
          fmt(maxD ?? 0),
          vs(maxD, (o) => o.sweep?.maxSustained?.achievedDeliveriesPerSecond),
        )
      : "none",
    half
      ? `${ms(half.delivery.p50)} / ${ms(half.delivery.p99)} / ${ms(half.delivery.p999)} ms`
      : "",
    half ? `${ms(half.ack.p99)} ms` : "",
    cpu !== undefined
      ? cell(
          String(cpu),
          vs(cpu, (o) => o.sweep?.halfMax?.cpuSecondsPer1000Deliveries),
        )
      : "",
    mem !== undefined
      ? cell(
          kib(mem),
          vs(mem, (o) => o.idle?.perConnectionBytes),
        )
      : "",
    "",
  ]
    .join(" | ")
    .trim();
}

function goals(cc: TargetResult, raw?: TargetResult, sio?: TargetResult): string[] {
  const mark = (ok: boolean) => (ok ? "met" : "**not met**");
  const out: string[] = [];
  const mine = cc.sweep?.maxSustained?.achievedDeliveriesPerSecond ?? 0;
  const rawMax = raw?.sweep?.maxSustained?.achievedDeliveriesPerSecond;
  if (rawMax) {
    const share = mine / rawMax;
    out.push(
      `- At least half of raw-ws's deliveries/s: ${(share * 100).toFixed(0)}% (${fmt(mine)} of ${fmt(rawMax)}): ${mark(share >= GOALS.rawWsShare)}.`,
    );
  }
  const sioMax = sio?.sweep?.maxSustained?.achievedDeliveriesPerSecond;
  if (sioMax) {
    out.push(
      `- More deliveries/s than Socket.IO: ${fmt(mine)} against ${fmt(sioMax)}: ${mark(mine > sioMax)}.`,
    );
  }
  const half: StepResult | undefined = cc.sweep?.halfMax;
  if (half) {
    out.push(
      `- p99 send→delivery under ${GOALS.p99AtHalfMaxMs} ms at half the maximum rate: ${ms(half.delivery.p99)} ms: ${mark(half.delivery.p99 < GOALS.p99AtHalfMaxMs)}.`,
    );
  }
  const idle = cc.idle;
  if (idle) {
    out.push(
      `- At most 8 KiB of gateway memory per idle connection (${fmt(idle.connections)} connections): ${kib(idle.perConnectionBytes)}: ${mark(idle.perConnectionBytes <= GOALS.idleBytes)}.`,
    );
  }
  return out;
}
