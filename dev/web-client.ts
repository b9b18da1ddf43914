import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RegionEndpoint } from "../client/index.ts";
import type { PageStats, RegionInfo, RegionsSnapshot } from "../web/regions-api.ts";
import type { Regions } from "./regions/regions.ts";

/**
 * The development web client's server: it serves the single-page client of web/ and nothing
 * else, on its own port, so the gateway's public port keeps carrying only /ws and /healthz.
 *
 *   GET /             → web/index.html
 *   GET /app.js       → web/app.ts and the SDK, bundled for the browser by esbuild (minified;
 *                       /app.js.map maps it back to the sources)
 *   GET /app.css      → web/app.css
 *   GET /config.json  → {"regions": [{"name", "url"}], "historyPageSize"}: the gateways the
 *                       page dials, and how much history it loads at a time
 *   GET /token?user=  → the dev issuer's /token, relayed: the page signs in on its own origin,
 *                       so the issuer needs no CORS headers
 *
 * Given `control` (the two-region run), it also serves the live regions view:
 *
 *   GET  /regions                     → web/regions.html (web/regions.ts, bundled as /regions.js)
 *   GET  /api/regions                 → every region's health, replication lag, devices and
 *                                       state, and the chat pages' message counts summed
 *   POST /api/regions/<name>/kill     → the region's kill(), as the chaos checker does it
 *   POST /api/regions/<name>/restore  → its start(), over its data
 *   POST /api/stats                   → a chat page's counts (sent, acked, delivered, shown
 *                                       twice), keyed by its device; /config.json says
 *                                       `"stats": true` so that pages send them
 *
 * Every POST must carry `X-Regions-View: 1` (a header a page of another site cannot set
 * without a CORS preflight, which this server never grants) and, when the browser sends one,
 * an Origin equal to this server's: a dev machine's browser visiting other sites cannot kill
 * a region.
 *
 * The bundle is built in memory when the server starts (about 100 ms with esbuild): nothing
 * generated is committed, and there is no build step to forget or to go stale; a deployment
 * would bundle the same entry point with the same options into static files.
 */
export interface WebClientServer {
  readonly url: string;
  close(): Promise<void>;
}

export interface WebClientOptions {
  host?: string;
  /** port to listen on; 0 picks one. */
  port?: number;
  /** regions are the gateways the page dials (one region: its name may be ""). */
  regions: RegionEndpoint[];
  /** issuerUrl is the dev issuer's base URL (its /token is relayed). */
  issuerUrl: string;
  /** historyPageSize is how many messages the page loads at a time (default 50). */
  historyPageSize?: number;
  /** control enables the regions view (/regions and /api/...) over these regions. */
  control?: RegionsControl;
}

/** RegionsControl is what the regions view reads and does. */
export interface RegionsControl {
  regions(): Promise<RegionInfo[]>;
  kill(name: string): Promise<void>;
  restore(name: string): Promise<void>;
}

/**
 * regionsControl reads and drives a local multi-region run: health from each gateway's
 * /healthz, lag from the replication stand-ins (the directions into the region), devices from
 * the embedded gateway's own count (a run of processes cannot tell: null), kill and restore
 * with the region's own kill() and start(), which take down and bring back every process.
 */
export function regionsControl(regions: Regions): RegionsControl {
  const handle = (name: string) => {
    const r = regions.regions.find((x) => x.name === name);
    if (!r) throw new Error(`no region ${name}`);
    return r;
  };
  const healthy = async (wsUrl: string) => {
    const u = new URL(wsUrl);
    u.protocol = u.protocol === "wss:" ? "https:" : "http:";
    u.pathname = "/healthz";
    try {
      const res = await fetch(u, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      return res.ok;
    } catch {
      return false;
    }
  };
  return {
    async regions() {
      const lag = regions.lag();
      return Promise.all(
        regions.regions.map(async (r) => {
          const into = lag.filter((l) => l.name.endsWith(`→ ${r.name}`));
          const local = (r as { local?: { gateway?: { connectionCount(): number } } }).local;
          return {
            name: r.name,
            up: r.up,
            healthy: r.up && (await healthy(r.gatewayUrls[0] as string)),
            lagMs: Math.max(0, ...into.map((l) => l.oldestMs)),
            pending: into.reduce((n, l) => n + l.pending, 0),
            paused: into.some((l) => l.paused),
            devices: r.up && local?.gateway ? local.gateway.connectionCount() : r.up ? null : 0,
          };
        }),
      );
    },
    kill: (name) => handle(name).kill(),
    restore: (name) => handle(name).start(),
  };
}

const WEB_DIR = new URL("../web/", import.meta.url);

/**
 * bundleWebClient bundles web/app.ts (and web/regions.ts, the regions view) for the browser:
 * the scripts and their source maps.
 */
export async function bundleWebClient(): Promise<{
  script: string;
  map: string;
  regionsScript: string;
  regionsMap: string;
}> {
  // esbuild is a devDependency: the web client exists only in development runs.
  const { build } = await import("esbuild");
  const out = await build({
    entryPoints: [new URL("app.ts", WEB_DIR).pathname, new URL("regions.ts", WEB_DIR).pathname],
    bundle: true,
    platform: "browser",
    format: "esm",
    // bigint literals and class private fields, which every current browser has.
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    outdir: "out",
    write: false,
    logLevel: "silent",
  });
  const file = (name: string) =>
    out.outputFiles.find((f) => f.path.endsWith(`/${name}`))?.text ?? "";
  return {
    script: file("app.js"),
    map: file("app.js.map"),
    regionsScript: file("regions.js"),
    regionsMap: file("regions.js.map"),
  };
}

/** startWebClient serves the web client on `host:port`. */
export async function startWebClient(opts: WebClientOptions): Promise<WebClientServer> {
  const [{ script, map, regionsScript, regionsMap }, html, regionsHtml, css] = await Promise.all([
    bundleWebClient(),
    readFile(new URL("index.html", WEB_DIR), "utf8"),
    readFile(new URL("regions.html", WEB_DIR), "utf8"),
    readFile(new URL("app.css", WEB_DIR), "utf8"),
  ]);
  const control = opts.regions.length >= 2 ? opts.control : undefined;
  const config = JSON.stringify({
    regions: opts.regions,
    historyPageSize: opts.historyPageSize ?? 50,
    ...(control ? { stats: true } : {}),
  });
  /** stats: each reporting page's latest counts, by device (a dev run: a few pages). */
  const stats = new Map<string, PageStats>();
  const wsOrigins = [...new Set(opts.regions.map((r) => new URL(r.url).origin))].join(" ");
  const headers = (type: string) => ({
    "content-type": type,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ${wsOrigins}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
  });
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://localhost");
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, headers(type));
      res.end(body);
    };
    if (control && req.method === "POST" && u.pathname.startsWith("/api/")) {
      return post(req, u.pathname, send);
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(405, "text/plain", "GET only\n");
    }
    if (control) {
      switch (u.pathname) {
        case "/regions":
          return send(200, "text/html; charset=utf-8", regionsHtml);
        case "/regions.js":
          return send(200, "text/javascript; charset=utf-8", regionsScript);
        case "/regions.js.map":
          return send(200, "application/json", regionsMap);
        case "/api/regions": {
          control.regions().then(
            (regions) => {
              const totals = { sent: 0, acked: 0, delivered: 0, duplicates: 0 };
              for (const s of stats.values()) {
                for (const k of Object.keys(totals) as Array<keyof PageStats>) totals[k] += s[k];
              }
              send(
                200,
                "application/json",
                JSON.stringify({
                  regions,
                  messages: totals,
                  pages: stats.size,
                } satisfies RegionsSnapshot),
              );
            },
            (err: Error) => send(500, "application/json", JSON.stringify({ error: err.message })),
          );
          return;
        }
      }
    }
    switch (u.pathname) {
      case "/":
      case "/index.html":
        return send(200, "text/html; charset=utf-8", html);
      case "/app.js":
        return send(200, "text/javascript; charset=utf-8", script);
      case "/app.js.map":
        return send(200, "application/json", map);
      case "/app.css":
        return send(200, "text/css; charset=utf-8", css);
      case "/config.json":
        return send(200, "application/json", config);
      case "/token": {
        const user = u.searchParams.get("user") ?? "";
        fetch(`${opts.issuerUrl}/token?user=${encodeURIComponent(user)}`).then(
          async (r) => send(r.status, "application/json", await r.text()),
          () => send(502, "application/json", '{"error":"the dev issuer did not answer"}\n'),
        );
        return;
      }
      default:
        return send(404, "text/plain", "not found\n");
    }
  });
  /** post serves the regions view's POSTs, from the page's own origin only. */
  function post(
    req: IncomingMessage,
    path: string,
    send: (status: number, type: string, body: string) => void,
  ): void {
    const c = control as RegionsControl;
    const origin = req.headers.origin;
    if (
      req.headers["x-regions-view"] !== "1" ||
      (origin !== undefined && origin !== `http://${req.headers.host}`)
    ) {
      req.resume();
      send(403, "application/json", '{"error":"only the regions view may do this"}\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 4096) chunks.push(chunk);
    });
    req.on("end", () => {
      const action = /^\/api\/regions\/([A-Za-z0-9-]+)\/(kill|restore)$/.exec(path);
      if (action) {
        const [, name, what] = action as unknown as [string, string, "kill" | "restore"];
        c[what](name).then(
          () => send(200, "application/json", JSON.stringify({ name, done: what })),
          (err: Error) => send(404, "application/json", JSON.stringify({ error: err.message })),
        );
        return;
      }
      if (path !== "/api/stats") return send(404, "application/json", '{"error":"not found"}\n');
      let body: Partial<PageStats> & { device?: unknown };
      try {
        body = size > 4096 ? {} : JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        body = {};
      }
      const count = (v: unknown) =>
        Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : -1;
      const entry = {
        sent: count(body.sent),
        acked: count(body.acked),
        delivered: count(body.delivered),
        duplicates: count(body.duplicates),
      };
      if (
        typeof body.device !== "string" ||
        !/^[A-Za-z0-9_.-]{1,64}$/.test(body.device) ||
        Object.values(entry).some((v) => v < 0) ||
        (!stats.has(body.device) && stats.size >= 1000)
      ) {
        return send(400, "application/json", '{"error":"bad stats"}\n');
      }
      stats.set(body.device, entry);
      send(204, "application/json", "");
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(":") ? `[${address}]` : address}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
