import { performance } from "node:perf_hooks";
import { newClientMsgId } from "../../client/index.ts";
import type { Target } from "../targets/launch.ts";
import type { BenchClient } from "./clients.ts";
import { LatencyHistogram, type Percentiles } from "./histogram.ts";

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
  /** serverCpuPercent and loadCpuPercent are of one core. */
  serverCpuPercent: number;
  loadCpuPercent: number;
  sendErrors: number;
  disconnects: number;
  /** undelivered counts deliveries of window messages still missing after the drain. */
  undelivered: number;
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
  readonly #senders: Array<{ client: BenchClient; conversationId: string; fanout: number }> = [];
  readonly #text: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;
  #lastDeliveryAt = 0;
  #window: { start: number; end: number } | undefined;
  #deliveredInWindow = 0;
  #ackedInWindow = 0;
  #sendErrors = 0;
  #ack = new LatencyHistogram();
  #delivery = new LatencyHistogram();
  #sendLag = new LatencyHistogram();

  constructor(groups: Group[], messageBytes: number) {
    this.#groups = groups;
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
    this.#sendErrors = 0;
    const disconnectsBefore = this.#disconnects();
    const rate = opts.sendsPerSecond;
    const start = performance.now();
    const window = { start: start + opts.warmupMs, end: start + opts.warmupMs + opts.measureMs };
    this.#window = window;
    let issued = 0;
    let before: { cpu: number; load: NodeJS.CpuUsage } | undefined;
    let after: { cpu: number; load: NodeJS.CpuUsage } | undefined;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        if (!before && now >= window.start) {
          before = { cpu: target.usage().cpuSeconds, load: process.cpuUsage() };
        }
        if (now >= window.end) {
          after = { cpu: target.usage().cpuSeconds, load: process.cpuUsage() };
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
    const b = before as NonNullable<typeof before>;
    const a = after as NonNullable<typeof after>;
    const serverCpuSeconds = a.cpu - b.cpu;
    const loadCpu = process.cpuUsage(b.load);
    const offeredDeliveries = rate * this.fanout;
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
      serverCpuPercent: Math.round((serverCpuSeconds / windowSeconds) * 100),
      loadCpuPercent: Math.round(((loadCpu.user + loadCpu.system) / 1e6 / windowSeconds) * 100),
      sendErrors: this.#sendErrors,
      disconnects: this.#disconnects() - disconnectsBefore,
      undelivered,
    };
  }

  #lastProgress = -1;

  #send(t0: number) {
    const s = this.#senders[this.#next++ % this.#senders.length];
    if (!s) return;
    const id = newClientMsgId();
    const w = this.#window;
    const measured = w !== undefined && t0 >= w.start && t0 < w.end;
    if (measured) this.#sendLag.record(performance.now() - t0);
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

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
