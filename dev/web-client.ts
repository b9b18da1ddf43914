import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RegionEndpoint } from "../client/index.ts";

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
}

const WEB_DIR = new URL("../web/", import.meta.url);

/** bundleWebClient bundles web/app.ts for the browser: the script and its source map. */
export async function bundleWebClient(): Promise<{ script: string; map: string }> {
  // esbuild is a devDependency: the web client exists only in development runs.
  const { build } = await import("esbuild");
  const out = await build({
    entryPoints: [new URL("app.ts", WEB_DIR).pathname],
    bundle: true,
    platform: "browser",
    format: "esm",
    // bigint literals and class private fields, which every current browser has.
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    outfile: "app.js",
    write: false,
    logLevel: "silent",
  });
  const file = (ext: string) => out.outputFiles.find((f) => f.path.endsWith(ext))?.text ?? "";
  return { script: file(".js"), map: file(".js.map") };
}

/** startWebClient serves the web client on `host:port`. */
export async function startWebClient(opts: WebClientOptions): Promise<WebClientServer> {
  const [{ script, map }, html, css] = await Promise.all([
    bundleWebClient(),
    readFile(new URL("index.html", WEB_DIR), "utf8"),
    readFile(new URL("app.css", WEB_DIR), "utf8"),
  ]);
  const config = JSON.stringify({
    regions: opts.regions,
    historyPageSize: opts.historyPageSize ?? 50,
  });
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
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(405, "text/plain", "GET only\n");
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
