import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";

/**
 * TcpProxy is a TCP proxy on 127.0.0.1 in front of one address (or several, taken in turn, as
 * a load balancer spreads connections over a region's gateways, skipping one that refuses),
 * for tests and the chaos run, which need a network that misbehaves the way real ones do
 * between a phone and a region:
 *
 * - `freeze()` makes a black hole: connections stay open and new ones are accepted, but no byte
 *   moves in either direction (a region that stops answering without resetting anything).
 *   Bytes sent meanwhile are held, and `thaw()` delivers them in order, as TCP retransmission
 *   does once a partition heals.
 * - `delay(ms)` holds every chunk `ms` before forwarding it, each way (a far region).
 * - `cut()` resets every connection and resets new ones as soon as they are accepted (a region
 *   that is down); `thaw()` lets new connections through again.
 * - `close()` stops listening and destroys every connection.
 *
 * Point a client at `url(path)` instead of the target, e.g. `proxy.url("/ws")` for a gateway.
 */
export class TcpProxy {
  readonly port: number;
  readonly #server: Server;
  readonly #targets: Array<{ host: string; port: number }>;
  readonly #roundRobin: boolean;
  #next = 0;
  readonly #links = new Set<Link>();
  #frozen = false;
  #cut = false;
  #delayMs = 0;

  private constructor(
    server: Server,
    targets: Array<{ host: string; port: number }>,
    roundRobin: boolean,
  ) {
    this.#server = server;
    this.#targets = targets;
    this.#roundRobin = roundRobin;
    this.port = (server.address() as AddressInfo).port;
  }

  /**
   * start listens on an ephemeral port of 127.0.0.1, forwarding to `target` (host:port or URL),
   * or to several: in turn (`balance: "round-robin"`, the default), or to the first that
   * accepts (`"first-available"`: a preferred instance, with the others as fallbacks).
   */
  static async start(
    target:
      | { host: string; port: number }
      | string
      | Array<{ host: string; port: number } | string>,
    opts: { balance?: "round-robin" | "first-available" } = {},
  ): Promise<TcpProxy> {
    const to = (Array.isArray(target) ? target : [target]).map((t) =>
      typeof t === "string" ? { host: new URL(t).hostname, port: Number(new URL(t).port) } : t,
    );
    if (to.length === 0) throw new Error("TcpProxy needs a target");
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const proxy = new TcpProxy(server, to, opts.balance !== "first-available");
    server.on("connection", (socket) => proxy.#accept(socket));
    return proxy;
  }

  /** url is a ws:// URL on this proxy with the given path, e.g. "/ws". */
  url(path: string): string {
    return `ws://127.0.0.1:${this.port}${path}`;
  }

  /** freeze stops forwarding in both directions; connections stay open (a black hole). */
  freeze(): void {
    this.#frozen = true;
  }

  /** thaw undoes freeze (delivering what was held) and cut. */
  thaw(): void {
    this.#frozen = false;
    this.#cut = false;
    for (const link of this.#links) link.pump();
  }

  /** delay adds `ms` of latency to every chunk forwarded, each way (0 removes it). */
  delay(ms: number): void {
    this.#delayMs = ms;
  }

  /** cut resets every connection and every new one until thaw. */
  cut(): void {
    this.#cut = true;
    for (const link of [...this.#links]) link.reset();
  }

  /** close stops the proxy for good. */
  async close(): Promise<void> {
    for (const link of [...this.#links]) link.reset();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** frozen is true between freeze and thaw. */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** delayMs is the latency currently added each way. */
  get delayMs(): number {
    return this.#delayMs;
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      client.on("error", () => {});
      client.resetAndDestroy();
      return;
    }
    // Hold the client's bytes until an upstream connects: a target that refuses (its process
    // died) hands the client to the next one, once round the targets.
    client.pause();
    client.on("error", () => {});
    const first = this.#roundRobin ? this.#next++ : 0;
    const dial = (attempt: number) => {
      if (attempt >= this.#targets.length || client.destroyed) {
        client.resetAndDestroy();
        return;
      }
      const target = this.#targets[(first + attempt) % this.#targets.length] as {
        host: string;
        port: number;
      };
      const upstream = connect(target);
      upstream.once("error", () => dial(attempt + 1));
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        const link = new Link(this, client, upstream, () => this.#links.delete(link));
        this.#links.add(link);
        client.resume();
      });
    };
    dial(0);
  }
}

/** Chunk is data waiting to be forwarded, and when it may go. */
interface Chunk {
  data: Buffer;
  dueAt: number;
}

/** Link is one proxied connection: a client socket, its upstream socket, a queue each way. */
class Link {
  readonly #proxy: TcpProxy;
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #toUpstream: Chunk[] = [];
  readonly #toClient: Chunk[] = [];
  readonly #forget: () => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #clientClosed = false;
  #upstreamClosed = false;
  #gone = false;

  constructor(proxy: TcpProxy, client: Socket, upstream: Socket, forget: () => void) {
    this.#proxy = proxy;
    this.#client = client;
    this.#upstream = upstream;
    this.#forget = forget;
    const take = (queue: Chunk[]) => (data: Buffer) => {
      queue.push({ data, dueAt: Date.now() + proxy.delayMs });
      this.pump();
    };
    client.on("data", take(this.#toUpstream));
    upstream.on("data", take(this.#toClient));
    // One side closing closes the other once what is queued for it has gone, so a close frame
    // sent just before the FIN still arrives (late, when delayed; not at all, while frozen).
    client.on("close", () => {
      this.#clientClosed = true;
      this.pump();
    });
    upstream.on("close", () => {
      this.#upstreamClosed = true;
      this.pump();
    });
    client.on("error", () => {});
    upstream.on("error", () => {});
  }

  /** pump forwards every chunk that is due, in order, unless the proxy is frozen. */
  pump(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#gone || this.#proxy.frozen) return;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [queue, to] of [
      [this.#toUpstream, this.#upstream],
      [this.#toClient, this.#client],
    ] as const) {
      while (queue.length > 0 && (queue[0] as Chunk).dueAt <= now) {
        const chunk = queue.shift() as Chunk;
        if (!to.destroyed) to.write(chunk.data);
      }
      if (queue.length > 0) next = Math.min(next, (queue[0] as Chunk).dueAt);
    }
    if (next !== Number.POSITIVE_INFINITY) {
      this.#timer = setTimeout(() => this.pump(), next - now);
    }
    const drained =
      (this.#clientClosed && this.#toUpstream.length === 0) ||
      (this.#upstreamClosed && this.#toClient.length === 0);
    if (drained) this.#end();
  }

  /** reset drops both sides with a TCP reset. */
  reset(): void {
    this.#gone = true;
    clearTimeout(this.#timer);
    this.#client.resetAndDestroy();
    this.#upstream.resetAndDestroy();
    this.#forget();
  }

  #end(): void {
    if (this.#gone) return;
    this.#gone = true;
    clearTimeout(this.#timer);
    this.#client.destroy();
    this.#upstream.destroy();
    this.#forget();
  }
}
