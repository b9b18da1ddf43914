import type { Target } from "../targets/launch.ts";
import type { Load, StepResult } from "./step.ts";

/** SweepOptions shape the search for the highest sustained rate. */
export interface SweepOptions {
  startSendsPerSecond: number;
  maxSteps: number;
  warmupMs: number;
  measureMs: number;
  /** sloP99Ms is the p99 send→delivery beyond which latency counts as broken. */
  sloP99Ms: number;
  progress?: (line: string) => void;
}

/** SweepResult holds every step, the best sustained one, and the step at half its rate. */
export interface SweepResult {
  /** steps in the order run; settleSeconds is how long the target took to calm down after. */
  steps: Array<StepResult & { sustained: boolean; why: string; settleSeconds?: number }>;
  maxSustained?: StepResult;
  halfMax?: StepResult;
}

/**
 * sweep doubles the offered rate until a step is not sustained (fewer than 95% of offered
 * deliveries arrive in the window, p99 beyond the SLO, or anything lost or refused), narrows
 * the boundary by bisection, and then measures at half of the best sustained rate.
 */
export async function sweep(target: Target, load: Load, o: SweepOptions): Promise<SweepResult> {
  const steps: SweepResult["steps"] = [];
  const run = async (sendsPerSecond: number) => {
    const rate = Math.max(1, Math.round(sendsPerSecond));
    const r = await load.step(target, {
      sendsPerSecond: rate,
      warmupMs: o.warmupMs,
      measureMs: o.measureMs,
      drainMs: Math.max(5_000, o.measureMs),
      progress: o.progress,
    });
    const why = verdict(r, o.sloP99Ms);
    const step: SweepResult["steps"][number] = { ...r, sustained: why === "", why };
    steps.push(step);
    o.progress?.(
      `${rate} sends/s → ${r.achievedDeliveriesPerSecond} deliveries/s, p99 ${r.delivery.p99.toFixed(1)} ms${why ? ` (${why})` : ""}`,
    );
    // Let an overloaded step's backlog drain before the next one: first the deliveries, then
    // whatever the target still does on their account (pushes due later, receipts, backends).
    await load.quiet(1_000, 60_000);
    step.settleSeconds = await settle(target, idleCpu, o.progress);
    return step;
  };
  const idleCpu = await cpuShare(target, 2_000);

  let good: StepResult | undefined;
  let bad: number | undefined;
  let rate = o.startSendsPerSecond;
  let budget = o.maxSteps;
  while (budget-- > 0) {
    const s = await run(rate);
    if (s.sustained) {
      good = s;
      rate *= 2;
    } else {
      bad = rate;
      if (good) break;
      rate /= 4; // the start was already too much: come down
      if (rate < 1) break;
    }
  }
  // Two bisection steps between the last good and the first bad rate (geometric midpoints).
  for (let i = 0; i < 2 && good && bad !== undefined && budget-- > 0; i++) {
    const mid = Math.sqrt(good.offeredSendsPerSecond * bad);
    if (mid / good.offeredSendsPerSecond < 1.1) break;
    const s = await run(mid);
    if (s.sustained) good = s;
    else bad = mid;
  }
  if (!good) return { steps };
  const halfMax = await run(good.offeredSendsPerSecond / 2);
  return { steps, maxSustained: good, halfMax };
}

/** cpuShare is the share of one CPU the target used over the next `ms`. */
async function cpuShare(target: Target, ms: number): Promise<number> {
  const before = target.usage().cpuSeconds;
  await new Promise((r) => setTimeout(r, ms));
  return (target.usage().cpuSeconds - before) / (ms / 1000);
}

/**
 * settle waits (up to a minute) until the target is back to within 15 points of the CPU
 * share it used with its clients connected and idle, and returns how long that took.
 */
async function settle(
  target: Target,
  idleCpu: number,
  progress?: (line: string) => void,
): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < 60; i++) {
    const share = await cpuShare(target, 1_000);
    if (share <= idleCpu + 0.15) break;
    progress?.(`settling: ${Math.round(share * 100)}% CPU (idle ${Math.round(idleCpu * 100)}%)`);
  }
  return Math.round((performance.now() - started) / 100) / 10;
}

function verdict(r: StepResult, sloP99Ms: number): string {
  if (r.sendErrors > 0) return `${r.sendErrors} sends refused`;
  if (r.disconnects > 0) return `${r.disconnects} connections dropped`;
  if (r.undelivered > 0) return `${r.undelivered} deliveries missing after the drain`;
  if (r.achievedDeliveriesPerSecond < 0.95 * r.offeredDeliveriesPerSecond)
    return "fell behind the offered rate";
  if (r.delivery.p99 > sloP99Ms) return `p99 above ${sloP99Ms} ms`;
  return "";
}
