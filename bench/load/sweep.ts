import type { Target } from "../targets/launch.ts";
import type { TargetCounters } from "../targets/protocol.ts";
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
  /** idle is what the target did with its clients connected and no load. */
  idle?: IdleWork;
  /** steps in the order run; settleSeconds is how long the target took to calm down after. */
  steps: Array<StepResult & { sustained: boolean; why: string; settleSeconds?: number }>;
  maxSustained?: StepResult;
  halfMax?: StepResult;
}

/**
 * IdleWork is the target's background with its clients connected and no load (heartbeats,
 * the delivery canary, bus consumers polling, timers): the part of every step's figures that
 * does not come from the sends.
 */
export interface IdleWork {
  /** cpuShare: the share of a core it settled at (see idleShare). */
  cpuShare: number;
  /** per second over a quiet window: RPCs served, bus records published, JS heap allocated
   * and collection pauses (all its Node processes). */
  rpcsPerSecond: number;
  busPublishedPerSecond: number;
  allocatedBytesPerSecond: number;
  gcPauseMsPerSecond: number;
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
      `${rate} sends/s → ${r.achievedDeliveriesPerSecond} deliveries/s, p99 ${r.delivery.p99.toFixed(1)} ms, load ${r.loadCpuMicrosPerDelivery} µs/delivery${why ? ` (${why})` : ""}`,
    );
    // Let an overloaded step's backlog drain before the next one: first the deliveries, then
    // whatever the target still does on their account (pushes due later, receipts, backends).
    await load.quiet(1_000, 60_000);
    step.settleSeconds = await settle(target, idleCpu, o.progress);
    return step;
  };
  const idleCpu = await idleShare(target, o.progress);
  const idle = await idleWork(target, idleCpu, 2_000);

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
  if (!good) return { idle, steps };
  const halfMax = await run(good.offeredSendsPerSecond / 2);
  return { idle, steps, maxSustained: good, halfMax };
}

/**
 * idleShare is the CPU share the target settles at with its clients connected and no load:
 * the least of one-second samples, taken until two in a row agree (up to 20 s). Clients that
 * just connected leave work behind (a target of several processes replays inboxes, joins
 * presence), and a baseline taken during it would let every later step "settle" while a
 * backlog still drains.
 */
async function idleShare(target: Target, progress?: (line: string) => void): Promise<number> {
  let least = await cpuShare(target, 1_000);
  for (let i = 0; i < 20; i++) {
    const share = await cpuShare(target, 1_000);
    const settled = Math.abs(share - least) < 0.05;
    least = Math.min(least, share);
    if (settled) break;
    progress?.(`waiting for the target to idle: ${Math.round(share * 100)}% CPU`);
  }
  return least;
}

/** idleWork reads the target's counters across `ms` of no load. */
async function idleWork(target: Target, cpuShare: number, ms: number): Promise<IdleWork> {
  const before = await target.counters();
  const started = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const after = await target.counters();
  const seconds = (performance.now() - started) / 1000;
  const rate = (f: (c: TargetCounters) => number) =>
    Math.round(((f(after) - f(before)) / seconds) * 10) / 10;
  const sum = (c: Record<string, number>) => Object.values(c).reduce((n, x) => n + x, 0);
  const processes = (c: TargetCounters, f: (p: TargetCounters["processes"][string]) => number) =>
    Object.values(c.processes).reduce((n, p) => n + f(p), 0);
  return {
    cpuShare: Math.round(cpuShare * 100) / 100,
    rpcsPerSecond: rate((c) => sum(c.rpcs)),
    busPublishedPerSecond: rate((c) => sum(c.busPublished)),
    allocatedBytesPerSecond: Math.round(rate((c) => processes(c, (p) => p.allocatedBytes))),
    gcPauseMsPerSecond: rate((c) => processes(c, (p) => p.gcPauseMs)),
  };
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
