import { newNonce } from "./frames.ts";

/** LivenessOptions tune how fast a connection that stopped answering is noticed. */
export interface LivenessOptions {
  /** heartbeatMs is the regular ping interval (from the welcome). */
  heartbeatMs: number;
  /** pongTimeoutMs is how long a ping may wait for its pong while nothing else arrives. */
  pongTimeoutMs: number;
  /** ackTimeoutMs is how long a request may wait in silence before a ping checks the line. */
  ackTimeoutMs: number;
  /** ping sends a ping frame with this nonce. */
  ping: (nonce: bigint) => void;
  /** dead is called once, when the connection is judged dead. */
  dead: () => void;
}

/**
 * Liveness watches one welcomed connection for a black hole: a peer that stops answering
 * without the TCP connection closing, which a socket alone reports only minutes later.
 *
 * Every ping expects its pong within pongTimeoutMs; a request that has waited ackTimeoutMs
 * without anything arriving from the server sends a ping at once, so a send into a dead region
 * is noticed in about ackTimeoutMs + pongTimeoutMs instead of at the next heartbeat. Frames that
 * keep arriving count as an answer: a pong queued behind a long replay on a slow link is late,
 * not lost, and dropping that connection would only start the replay over.
 */
export class Liveness {
  readonly #o: LivenessOptions;
  readonly #pings = new Map<bigint, number>();
  readonly #requests = new Map<number, number>();
  readonly #heartbeat: ReturnType<typeof setInterval>;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #lastFrameAt = Date.now();
  #stopped = false;

  constructor(opts: LivenessOptions) {
    this.#o = opts;
    this.#heartbeat = setInterval(() => this.ping(), opts.heartbeatMs);
  }

  /** received notes that a frame arrived from the server. */
  received(): void {
    this.#lastFrameAt = Date.now();
  }

  /** pong notes the answer to one of our pings. */
  pong(nonce: bigint): void {
    this.#pings.delete(nonce);
    if (this.#pings.size === 0) {
      clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
    }
  }

  /** requestSent notes a request that expects an answer. */
  requestSent(requestId: number): void {
    if (this.#stopped) return;
    this.#requests.set(requestId, Date.now());
    this.#ackTimer ??= setTimeout(() => this.#checkAcks(), this.#o.ackTimeoutMs);
  }

  /** answered notes that a request was answered (or given up on). */
  answered(requestId: number): void {
    this.#requests.delete(requestId);
    if (this.#requests.size === 0) {
      clearTimeout(this.#ackTimer);
      this.#ackTimer = undefined;
    }
  }

  /** ping sends a ping now and starts its pong deadline. */
  ping(): void {
    if (this.#stopped) return;
    const nonce = newNonce();
    this.#pings.set(nonce, Date.now());
    this.#o.ping(nonce);
    this.#pongTimer ??= setTimeout(() => this.#checkPongs(), this.#o.pongTimeoutMs);
  }

  /** stop ends the watch (the connection is gone). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#pongTimer);
    clearTimeout(this.#ackTimer);
  }

  #checkPongs(): void {
    this.#pongTimer = undefined;
    if (this.#stopped || this.#pings.size === 0) return;
    const due = Math.max(oldest(this.#pings), this.#lastFrameAt);
    const left = due + this.#o.pongTimeoutMs - Date.now();
    if (left > 0) {
      this.#pongTimer = setTimeout(() => this.#checkPongs(), left);
      return;
    }
    this.stop();
    this.#o.dead();
  }

  #checkAcks(): void {
    this.#ackTimer = undefined;
    if (this.#stopped || this.#requests.size === 0) return;
    const since = Math.max(oldest(this.#requests), this.#lastFrameAt);
    const left = since + this.#o.ackTimeoutMs - Date.now();
    if (left <= 0 && this.#pings.size === 0) this.ping();
    this.#ackTimer = setTimeout(() => this.#checkAcks(), left > 0 ? left : this.#o.ackTimeoutMs);
  }
}

/** oldest is the first time in a map filled in time order. */
function oldest(times: Map<unknown, number>): number {
  return times.values().next().value ?? Date.now();
}
