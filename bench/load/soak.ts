import type { Target } from "../targets/launch.ts";
import type { Load } from "./step.ts";

/** SoakWindow is one window of a soak: what the clients saw and what the target held. */
export interface SoakWindow {
  /** minute is the window's end, in minutes since the soak began. */
  minute: number;
  achievedDeliveriesPerSecond: number;
  deliveryP50Ms: number;
  deliveryP99Ms: number;
  sendErrors: number;
  undelivered: number;
  disconnects: number;
  /** rssMiB is the resident memory of the target's processes at the window's end. */
  rssMiB: number;
  /** heapMiB is the JS heap in use in the target's Node processes at the window's end. */
  heapMiB: number;
  /**
   * liveHeapMiB is what of it is live: the heap after full collections, taken once the
   * window has drained, before the next begins (so its pause is in no window).
   */
  liveHeapMiB: number;
  serverCpuPercent: number;
  gcPauseMsPerSecond: number;
}

/** SoakResult is a soak's windows and its verdict. */
export interface SoakResult {
  sendsPerSecond: number;
  windows: SoakWindow[];
  /** lost counts sends refused and deliveries missing over the whole soak. */
  lost: number;
}

/**
 * soak keeps one offered rate for `minutes` one-minute windows back to back (each drains
 * before the next begins, a second or so), and records per window the latency, losses, the
 * target's resident memory and CPU: a flat memory column and a flat p99 column are the proof
 * that nothing accumulates.
 */
export async function soak(
  target: Target,
  load: Load,
  o: { sendsPerSecond: number; minutes: number; progress?: (line: string) => void },
): Promise<SoakResult> {
  const windows: SoakWindow[] = [];
  const started = performance.now();
  for (let i = 0; i < o.minutes; i++) {
    const r = await load.step(target, {
      sendsPerSecond: o.sendsPerSecond,
      warmupMs: i === 0 ? 5_000 : 0,
      measureMs: 60_000,
      drainMs: 10_000,
      progress: o.progress,
    });
    const heapBytes = Object.values(r.work.processes).reduce((n, p) => n + p.heapUsedBytes, 0);
    const live = await target.memory("all");
    const w: SoakWindow = {
      minute: Math.round((performance.now() - started) / 6_000) / 10,
      achievedDeliveriesPerSecond: r.achievedDeliveriesPerSecond,
      deliveryP50Ms: round(r.delivery.p50),
      deliveryP99Ms: round(r.delivery.p99),
      sendErrors: r.sendErrors,
      undelivered: r.undelivered,
      disconnects: r.disconnects,
      rssMiB: round(target.usage().rssBytes / 2 ** 20),
      heapMiB: round(heapBytes / 2 ** 20),
      liveHeapMiB: round(live.heapUsedBytes / 2 ** 20),
      serverCpuPercent: r.serverCpuPercent,
      gcPauseMsPerSecond: round(r.work.gcPauseMsPerSecond),
    };
    windows.push(w);
    o.progress?.(
      `soak minute ${i + 1}/${o.minutes}: p99 ${w.deliveryP99Ms} ms, RSS ${w.rssMiB} MiB, live heap ${w.liveHeapMiB} MiB, lost ${w.sendErrors + w.undelivered}`,
    );
  }
  const lost = windows.reduce((n, w) => n + w.sendErrors + w.undelivered, 0);
  return { sendsPerSecond: o.sendsPerSecond, windows, lost };
}

/** soakTable renders a soak as a markdown table. */
export function soakTable(name: string, s: SoakResult): string {
  const rows = s.windows.map(
    (w) =>
      `| ${w.minute} | ${w.achievedDeliveriesPerSecond} | ${w.deliveryP50Ms} / ${w.deliveryP99Ms} | ${w.sendErrors + w.undelivered} | ${w.disconnects} | ${w.rssMiB} | ${w.heapMiB} | ${w.liveHeapMiB} | ${w.serverCpuPercent}% | ${w.gcPauseMsPerSecond} |`,
  );
  return [
    `### ${name}: ${s.sendsPerSecond} sends/s for ${s.windows.length} minutes, ${s.lost} lost`,
    "",
    "| minute | deliveries/s | delivery p50 / p99 (ms) | lost | disconnects | target RSS (MiB) | JS heap (MiB) | live JS heap (MiB) | target CPU | GC pause ms/s |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
