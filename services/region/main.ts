// `npm start`: a whole region in this one process, on embedded (in-memory) backends.
import { z } from "zod";
import { stopOnSignals } from "../shared/process.ts";
import { startTracing, stopTracing } from "../shared/tracing.ts";
import { DEFAULT_PORTS, startLocalRegion } from "./region.ts";

/** DEFAULT_WEB_PORT is where `npm start` serves the dev web client (WEB_PORT overrides). */
const DEFAULT_WEB_PORT = 8085;

const port = (fallback: number) => z.coerce.number().int().min(0).max(65_535).default(fallback);
const portsSchema = z.object({
  GATEWAY_PORT: port(DEFAULT_PORTS.gateway),
  GATEWAY_ADMIN_PORT: port(DEFAULT_PORTS.gatewayAdmin),
  MESSAGING_PORT: port(DEFAULT_PORTS.messaging),
  NOTIFICATION_PORT: port(DEFAULT_PORTS.notification),
  PERSISTENCE_PORT: port(DEFAULT_PORTS.persistence),
  ISSUER_PORT: port(DEFAULT_PORTS.issuer),
  WEB_PORT: port(DEFAULT_WEB_PORT),
  /** WEB_CLIENT=off skips the web client. */
  WEB_CLIENT: z.enum(["on", "off"]).default("on"),
});

try {
  const parsed = portsSchema.safeParse(process.env);
  if (!parsed.success) {
    throw new Error(
      `invalid configuration:\n${parsed.error.issues.map((i) => `  ${String(i.path[0])}: ${i.message}`).join("\n")}`,
    );
  }
  const p = parsed.data;
  // Off unless OTEL_TRACES_EXPORTER=otlp (e.g. to a local Jaeger on :4318); every service
  // in this process traces under its own name.
  await startTracing({ service: "region", region: process.env.CHAT_REGION ?? "local" });
  const region = await startLocalRegion({
    env: process.env,
    log: "stdout",
    ports: {
      gateway: p.GATEWAY_PORT,
      gatewayAdmin: p.GATEWAY_ADMIN_PORT,
      messaging: p.MESSAGING_PORT,
      notification: p.NOTIFICATION_PORT,
      persistence: p.PERSISTENCE_PORT,
      issuer: p.ISSUER_PORT,
    },
  });
  const u = region.urls;
  // A separate, development-only server: the gateway's public port keeps /ws and /healthz only.
  // Imported here so that nothing else that starts a region loads the web client's bundler.
  let web: { url: string; close(): Promise<void> } | undefined;
  let webNote = "";
  if (p.WEB_CLIENT === "on") {
    try {
      const { startWebClient } = await import("../../dev/web-client.ts");
      web = await startWebClient({
        host: new URL(u.gateway).hostname.replace(/^\[|\]$/g, ""),
        port: p.WEB_PORT,
        regions: [{ name: "", url: region.wsUrl }],
        issuerUrl: region.issuer.url,
      });
    } catch (err) {
      webNote = `(the web client did not start: ${err instanceof Error ? err.message : err})`;
    }
  }
  const banner = [
    "",
    `Connect Chat: region "${region.region}" is running in this process on embedded backends.`,
    "",
    `  Web client           ${web ? `${web.url}/     (open it in two windows, sign in as alice and bob)` : webNote || "off (WEB_CLIENT=off)"}`,
    `  Clients connect to   ${region.wsUrl}`,
    "                       (subprotocol connectchat.v1.proto, or connectchat.v1.json)",
    `  Get a dev token      curl '${region.issuer.url}/token?user=alice'`,
    "  Chat from a terminal npm run chat -- --user alice     (and --user bob in another)",
    "",
    "  gRPC services, each with grpc.health.v1.Health and server reflection:",
    `    gateway       ${u.gatewayAdmin}   (operator API; the public port ${u.gateway} has /ws and /healthz only)`,
    `    messaging     ${u.messaging}`,
    `    notification  ${u.notification}`,
    `    persistence   ${u.persistence}`,
    "",
    "  Probe them:",
    `    npx buf curl --http2-prior-knowledge --list-services ${u.messaging}`,
    `    npx buf curl --http2-prior-knowledge -d '{}' ${u.messaging}/grpc.health.v1.Health/Check`,
    "    # the services behind the gateway want an internal token; an operator's reads:",
    `    TOKEN=$(curl -s '${region.issuer.url}/internal-token?to=messaging&user=alice' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')`,
    `    npx buf curl --http2-prior-knowledge -H "Authorization: Bearer $TOKEN" -d '{}' \\`,
    `      ${u.messaging}/chat.v1.MessagingService/ListConversations`,
    "    # the gateway's operator API wants an operator's token from the identity provider:",
    `    OPS=$(curl -s '${region.issuer.url}/token?user=ops&operator=true' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')`,
    `    npx buf curl --http2-prior-knowledge -H "Authorization: Bearer $OPS" -d '{"userId":"alice"}' \\`,
    `      ${u.gatewayAdmin}/chat.v1.GatewayService/ListSessions`,
    "",
    "  Ctrl-C stops the region (everything is in memory and goes with it).",
    "",
  ];
  process.stdout.write(`${banner.join("\n")}\n`);
  stopOnSignals(async () => {
    await web?.close();
    await region.stop();
    await stopTracing();
  }, region.gateway.log);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
