import { performance } from "node:perf_hooks";
import { newClientMsgId } from "../../client/index.ts";
import type { Target } from "../targets/launch.ts";
import type { Counts } from "../targets/metrics.ts";
import type { TargetCounters } from "../targets/protocol.ts";
import type { BenchClient } from "./clients.ts";
import { LatencyHistogram, type Percentiles } from "./histogram.ts";
import { type WireSnapshot, WireStats, wireDelta } from "./wire-stats.ts";

/** Group is one conversation of the scenario and its members' clients. */
export interface Group {
  conversationId: string;
  members: BenchClient[];
}

/** StepResult is what one step at one offered load measured. */
export interface StepResult {
  offeredSendsPerSecond: number;
  offeredDeliveriesPerSecond: number;
  /** achieved rates are what arrived during the measurement window. */
  achievedSendsPerSecond: number;
  achievedDeliveriesPerSecond: number;
  /** ack: send → acknowledgement at the sender; delivery: send → arrival at each member device. */
  ack: Percentiles;
  delivery: Percentiles;
  /** sendLag is how late the load generator issued sends after their intended time. */
  sendLag: Percentiles;
  /** serverCpuSeconds is the target's CPU time (all its processes) during the window. */
  serverCpuSeconds: number;
  cpuSecondsPer1000Deliveries: number;
  /** serverCpuByProcess splits serverCpuSeconds by service and backend (procfs.ts). */
  serverCpuByProcess: Record<string, number>;
  /** serverCpuPercent and loadCpuPercent are of one core. */
  serverCpuPercent: number;
  loadCpuPercent: number;
  /** loadCpuMicrosPerDelivery is the load generator's own CPU per delivery it received. */
  loadCpuMicrosPerDelivery: number;
  sendErrors: number;
  disconnects: number;
  /** undelivered counts deliveries of window messages still missing after the drain. */
  undelivered: number;
  /** work is what the sends of the window cost, in total and per send. */
  work: StepWork;
}

/**
 * StepWork is what the target did during a step's window, from its counters, and what crossed
 * the clients' sockets, in total and per send issued in the window.
 */
export interface StepWork {
  /** sends issued in the window: the divisor of perSend. */
  sends: number;
  wire: WireSnapshot;
  rpcs: Counts;
  busPublished: Counts;
  busConsumed: Counts;
  /** processes: collections and JS heap allocation of each Node process of the target. */
  processes: Record<string, ProcessWork>;
  perSend: {
    rpcs: number;
    busPublished: number;
    busConsumed: number;
    /** frames and bytes the server wrote to clients (toClients) and read from them. */
    framesToClients: number;
    bytesToClients: number;
    framesFromClients: number;
    bytesFromClients: number;
    /** allocatedBytes: JS heap allocated, all the target's Node processes together. */
    allocatedBytes: number;
  };
  /** gcPauseMsPerSecond: collection pauses per second of window, all processes together. */
  gcPauseMsPerSecond: number;
  /** countersError says why the target's counters could not be read (wire figures remain). */
  countersError?: string;
}

/** ProcessWork is one process's collections and allocation during a window. */
export interface ProcessWork {
  gcCount: number;
  fullGcCount: number;
  gcPauseMs: number;
  allocatedBytes: number;
  /** heapUsedBytes at the end of the window. */
  heapUsedBytes: number;
}

interface Pending {
  t0: number;
  remaining: number;
  measured: boolean;
}

/**
 * Load drives an open-loop send schedule over a set of groups: messages are sent at the
 * offered rate whatever the server's answers, each stamped with its intended send time, so
 * that a server falling behind shows as latency (no coordinated omission).
 */
export class Load {
  readonly #groups: Group[];
  readonly #wire: WireStats;
  readonly #senders: Array<{ client: BenchClient; conversationId: string; fanout: number }> = [];
  readonly #text: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #lastDeliveryAt = 0;
  #window: { start: number; end: number } | undefined;
  #deliveredInWindow = 0;
  #ackedInWindow = 0;
  #sentInWindow = 0;
  #sendErrors = 0;
  #ack = new LatencyHistogram();
  #delivery = new LatencyHistogram();
  #sendLag = new LatencyHistogram();

  /** wire is what counts the clients' frames (the one their connectClients was given). */
  constructor(groups: Group[], messageBytes: number, wire = new WireStats()) {
    this.#groups = groups;
    this.#wire = wire;
    this.#text = "x".repeat(messageBytes);
    // Interleave senders across groups so consecutive sends hit different conversations.
    const longest = Math.max(...groups.map((g) => g.members.length));
    for (let i = 0; i < longest; i++) {
      for (const g of groups) {
        const client = g.members[i];
        if (client) {
          this.#senders.push({
            client,
            conversationId: g.conversationId,
            fanout: g.members.length,
          });
        }
      }
    }
    for (const g of groups) {
      for (const c of g.members) c.onMessage = (id) => this.#delivered(id);
    }
  }

  /** fanout is the mean number of member devices each send reaches. */
  get fanout(): number {
    return this.#senders.reduce((n, s) => n + s.fanout, 0) / this.#senders.length;
  }

  /**
   * step offers `sendsPerSecond` for warmup + measure, then waits up to `drainMs` for the
   * window's messages to arrive.
   */
  async step(
    target: Target,
    opts: {
      sendsPerSecond: number;
      warmupMs: number;
      measureMs: number;
      drainMs: number;
      progress?: (line: string) => void;
    },
  ): Promise<StepResult> {
    this.#ack = new LatencyHistogram();
    this.#delivery = new LatencyHistogram();
    this.#sendLag = new LatencyHistogram();
    this.#deliveredInWindow = 0;
    this.#ackedInWindow = 0;
    this.#sentInWindow = 0;
    this.#sendErrors = 0;
    const disconnectsBefore = this.#disconnects();
    const rate = opts.sendsPerSecond;
    const start = performance.now();
    const window = { start: start + opts.warmupMs, end: start + opts.warmupMs + opts.measureMs };
    this.#window = window;
    let issued = 0;
    let before: Edge | undefined;
    let after: Edge | undefined;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (!before && now >= window.start) before = this.#edge(target);
        if (now >= window.end) {
          after = this.#edge(target);
          resolve();
          return;
        }
        // Send i is due at start + i/rate: the first one at once.
        const due = Math.floor(((now - start) * rate) / 1000) + 1;
        for (; issued < due; issued++) this.#send(start + (issued * 1000) / rate);
        const lastSecond = Math.floor((now - start) / 1000);
        if (opts.progress && lastSecond !== this.#lastProgress) {
          this.#lastProgress = lastSecond;
          opts.progress(
            `${rate} sends/s · ${Math.round((now - start) / 1000)} s · ${this.#pending.size} in flight`,
          );
        }
        setTimeout(tick, 1);
      };
      tick();
    });
    this.#lastProgress = -1;
    const windowSeconds = opts.measureMs / 1000;
    const deliveredInWindow = this.#deliveredInWindow;
    const ackedInWindow = this.#ackedInWindow;
    // Wait for what was sent in the window to arrive (the backlog of an overloaded step).
    const drainUntil = performance.now() + opts.drainMs;
    while (this.#measuredPending() > 0 && performance.now() < drainUntil) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const undelivered = this.#measuredUndelivered();
    this.#pending.clear();
    this.#window = undefined;
    const b = before as Edge;
    const a = after as Edge;
    const serverCpuSeconds = a.cpu - b.cpu;
    // The generator's CPU in the window, less the harness's reading of /proc at its start.
    const loadCpuMicros = a.load.user + a.load.system - b.load.user - b.load.system - b.own;
    const offeredDeliveries = rate * this.fanout;
    const work = stepWork(
      this.#sentInWindow,
      windowSeconds,
      wireDelta(b.wire, a.wire),
      await b.counters,
      await a.counters,
    );
    return {
      offeredSendsPerSecond: rate,
      offeredDeliveriesPerSecond: Math.round(offeredDeliveries),
      achievedSendsPerSecond: Math.round(ackedInWindow / windowSeconds),
      achievedDeliveriesPerSecond: Math.round(deliveredInWindow / windowSeconds),
      ack: this.#ack.summary(),
      delivery: this.#delivery.summary(),
      sendLag: this.#sendLag.summary(),
      serverCpuSeconds: round(serverCpuSeconds, 2),
      cpuSecondsPer1000Deliveries:
        deliveredInWindow === 0 ? 0 : round((serverCpuSeconds * 1000) / deliveredInWindow, 4),
      serverCpuByProcess: cpuDelta(b.cpuByProcess, a.cpuByProcess),
      serverCpuPercent: Math.round((serverCpuSeconds / windowSeconds) * 100),
      loadCpuPercent: Math.round((loadCpuMicros / 1e6 / windowSeconds) * 100),
      loadCpuMicrosPerDelivery:
        deliveredInWindow === 0 ? 0 : round(loadCpuMicros / deliveredInWindow, 2),
      sendErrors: this.#sendErrors,
      disconnects: this.#disconnects() - disconnectsBefore,
      undelivered,
      work,
    };
  }

  /**
   * edge reads everything at one edge of the window: the target's CPU (from /proc, at once),
   * its counters (asked over IPC, answered a few milliseconds later), the wire counts and the
   * generator's CPU. Reading /proc is this process's own work, not the load's: its cost is
   * measured and taken out of the load's CPU.
   */
  #edge(target: Target): Edge {
    const load = process.cpuUsage();
    const wire = this.#wire.snapshot();
    const cpu = target.usage().cpuSeconds;
    const cpuByProcess = target.usageByProcess();
    const counters = target
      .counters()
      .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
    const own = process.cpuUsage(load);
    return { cpu, cpuByProcess, counters, wire, load, own: own.user + own.system };
  }

  #lastProgress = -1;

  #send(t0: number) {
    const s = this.#senders[this.#next++ % this.#senders.length];
    if (!s) return;
    const id = newClientMsgId();
    const w = this.#window;
    const measured = w !== undefined && t0 >= w.start && t0 < w.end;
    if (measured) {
      this.#sendLag.record(performance.now() - t0);
      this.#sentInWindow++;
    }
    this.#pending.set(id, { t0, remaining: s.fanout, measured });
    s.client.send(s.conversationId, id, this.#text).then(
      () => {
        const now = performance.now();
        if (measured) this.#ack.record(now - t0);
        if (w && now >= w.start && now < w.end) this.#ackedInWindow++;
      },
      () => {
        this.#sendErrors++;
      },
    );
  }

  /** quiet waits until no message has arrived for `quietMs` (a backlog drained), up to `maxMs`. */
  async quiet(quietMs: number, maxMs: number): Promise<void> {
    const until = performance.now() + maxMs;
    while (performance.now() < until && performance.now() - this.#lastDeliveryAt < quietMs) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  #delivered(clientMsgId: string) {
    const now = performance.now();
    this.#lastDeliveryAt = now;
    const w = this.#window;
    if (w && now >= w.start && now < w.end) this.#deliveredInWindow++;
    const p = this.#pending.get(clientMsgId);
    if (!p) return;
    if (p.measured) this.#delivery.record(now - p.t0);
    if (--p.remaining === 0) this.#pending.delete(clientMsgId);
  }

  #measuredPending(): number {
    let n = 0;
    for (const p of this.#pending.values()) if (p.measured) n++;
    return n;
  }

  #measuredUndelivered(): number {
    let n = 0;
    for (const p of this.#pending.values()) if (p.measured) n += p.remaining;
    return n;
  }

  #disconnects(): number {
    let n = 0;
    for (const g of this.#groups) for (const c of g.members) n += c.disconnects;
    return n;
  }
}

/** Edge is what is read at each edge of a step's window. */
interface Edge {
  cpu: number;
  cpuByProcess: Record<string, number>;
  counters: Promise<TargetCounters | Error>;
  wire: WireSnapshot;
  load: NodeJS.CpuUsage;
  /** own is the CPU (µs) this edge's reading of /proc took the generator's process. */
  own: number;
}

/** stepWork is the difference of the window's two edges, in total and per send. */
function stepWork(
  sends: number,
  windowSeconds: number,
  wire: WireSnapshot,
  before: TargetCounters | Error,
  after: TargetCounters | Error,
): StepWork {
  const per = (n: number) => (sends === 0 ? 0 : round(n / sends, 2));
  const sum = (c: Counts) => Object.values(c).reduce((n, x) => n + x, 0);
  const failed = before instanceof Error ? before : after instanceof Error ? after : undefined;
  const b = before instanceof Error ? undefined : before;
  const a = after instanceof Error ? undefined : after;
  const rpcs = a && b ? countsDelta(b.rpcs, a.rpcs) : {};
  const busPublished = a && b ? countsDelta(b.busPublished, a.busPublished) : {};
  const busConsumed = a && b ? countsDelta(b.busConsumed, a.busConsumed) : {};
  const processes: Record<string, ProcessWork> = {};
  for (const [name, end] of Object.entries(a?.processes ?? {})) {
    const start = b?.processes[name];
    if (!start) continue;
    processes[name] = {
      gcCount: end.gcCount - start.gcCount,
      fullGcCount: end.fullGcCount - start.fullGcCount,
      gcPauseMs: round(end.gcPauseMs - start.gcPauseMs, 1),
      allocatedBytes: end.allocatedBytes - start.allocatedBytes,
      heapUsedBytes: end.heapUsedBytes,
    };
  }
  const all = Object.values(processes);
  return {
    sends,
    wire,
    rpcs,
    busPublished,
    busConsumed,
    processes,
    perSend: {
      rpcs: per(sum(rpcs)),
      busPublished: per(sum(busPublished)),
      busConsumed: per(sum(busConsumed)),
      framesToClients: per(wire.framesIn),
      bytesToClients: per(wire.bytesIn),
      framesFromClients: per(wire.framesOut),
      bytesFromClients: per(wire.bytesOut),
      allocatedBytes: Math.round(per(all.reduce((n, p) => n + p.allocatedBytes, 0))),
    },
    gcPauseMsPerSecond: round(all.reduce((n, p) => n + p.gcPauseMs, 0) / windowSeconds, 1),
    ...(failed ? { countersError: failed.message } : {}),
  };
}

/** countsDelta is b − a by key, leaving out what did not change. */
function countsDelta(a: Counts, b: Counts): Counts {
  const out: Counts = {};
  for (const [k, n] of Object.entries(b)) {
    const d = n - (a[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

function cpuDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(b)) out[k] = round(n - (a[k] ?? 0), 2);
  return out;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
