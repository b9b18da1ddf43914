import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { Duplex } from "node:stream";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";
import type { Health } from "./health.ts";

/** HttpRoute answers a plain HTTP request, returning false to pass it on. */
export type HttpRoute = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

/** UpgradeHandler takes over an HTTP/1.1 Upgrade request (the gateway's WebSockets). */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

/** ServeOptions describes what one service port serves. */
export interface ServeOptions {
  port: number;
  host: string;
  routes: (router: ConnectRouter) => void;
  interceptors: Interceptor[];
  health: Health;
  /** metrics, when set, is served at GET /metrics. */
  metrics?: Registry;
  http?: HttpRoute;
  upgrade?: UpgradeHandler;
}

/** ServiceServer is a listening service port. */
export interface ServiceServer {
  readonly port: number;
  readonly url: string;
  /**
   * close stops accepting connections and requests, waits up to `graceMs` for the requests in
   * flight to finish, then ends every connection that is left.
   */
  close(graceMs?: number): Promise<void>;
}

/**
 * serve listens on one TCP port for everything a service offers: gRPC over HTTP/2 cleartext
 * (prior knowledge, as gRPC clients and Service Connect speak it), Connect and gRPC-Web over
 * HTTP/1.1 or HTTP/2, and plain HTTP/1.1 for load balancers, Prometheus and WebSocket upgrades.
 * The first bytes of a connection tell HTTP/2 (its preface starts "PRI") from HTTP/1.1.
 */
export async function serve(opts: ServeOptions): Promise<ServiceServer> {
  const rpc = connectNodeAdapter({
    routes: opts.routes,
    interceptors: opts.interceptors,
    // Bigger than any frame the contracts allow; protects the process from pathological input.
    readMaxBytes: 4 * 1024 * 1024,
    fallback: (req, res) => {
      if (opts.http?.(req as http.IncomingMessage, res as http.ServerResponse)) return;
      if (plainRoutes(req as http.IncomingMessage, res as http.ServerResponse, opts)) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    },
  });
  // Requests in flight, so that close can let them finish.
  let inflight = 0;
  let idle: (() => void) | undefined;
  const tracked = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    inflight++;
    res.once("close", () => {
      inflight--;
      if (inflight === 0) idle?.();
    });
    rpc(req as never, res as never);
  };
  const h1 = http.createServer({ keepAliveTimeout: 65_000 }, tracked);
  if (opts.upgrade) h1.on("upgrade", opts.upgrade);
  // One HTTP/2 session carries all of a caller's calls (every user's). Past its memory limit
  // (Node's default: 10 MB, counting answers queued for a peer that has not taken them yet) it
  // refuses every new call with ENHANCE_YOUR_CALM: a few large answers in flight (history pages
  // of big messages) failed everyone else's sends. The callers bound what they ask for (the
  // gateway's per-connection limits), so the limit here is only a last resort.
  const h2 = http2.createServer({ maxSessionMemory: 256 }, tracked);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.setNoDelay(true);
    const onReadable = () => {
      const head: Buffer | null = socket.read();
      if (head === null) return;
      if (head.length < 3 && "PRI".startsWith(head.toString("latin1"))) {
        socket.unshift(head); // too few bytes to tell yet
        return;
      }
      socket.off("readable", onReadable);
      socket.unshift(head);
      (head.subarray(0, 3).toString("latin1") === "PRI" ? h2 : h1).emit("connection", socket);
    };
    socket.on("readable", onReadable);
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const host = opts.host === "0.0.0.0" || opts.host === "::" ? "127.0.0.1" : opts.host;
  return {
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      h2.close(); // GOAWAY: open HTTP/2 sessions take no new streams
      h1.closeIdleConnections();
      if (inflight > 0) {
        await new Promise<void>((resolve) => {
          idle = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      // What is left is idle keep-alive connections and long-lived streams (health watches).
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function plainRoutes(req: http.IncomingMessage, res: http.ServerResponse, opts: ServeOptions) {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET") return false;
  if (path === "/healthz") {
    const ok = opts.health.serving();
    const failing = opts.health.failing();
    res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
    res.end(
      `${JSON.stringify({
        status: ok ? "SERVING" : "NOT_SERVING",
        ...(Object.keys(failing).length > 0 ? { failing } : {}),
      })}\n`,
    );
    return true;
  }
  const metrics = opts.metrics;
  if (path === "/metrics" && metrics) {
    metrics.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.contentType });
        res.end(body);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
    return true;
  }
  return false;
}
