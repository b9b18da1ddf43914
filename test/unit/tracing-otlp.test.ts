import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import test from "ava";
import { inSpan, startTracing, stopTracing } from "../../services/shared/tracing.ts";

// What the deployment runs: OTEL_TRACES_EXPORTER=otlp sends spans as OTLP/HTTP protobuf to
// OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces (the ADOT sidecar's port 4318 by default). Here
// the collector is a local HTTP server. Its own process (ava runs each file in one), since
// tracing is per process and the exporter reads the process's environment.
test("OTEL_TRACES_EXPORTER=otlp exports spans over OTLP/HTTP protobuf to the endpoint", async (t) => {
  const received: Array<{ path?: string; type?: string; body: Buffer }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({
        path: req.url,
        type: req.headers["content-type"],
        body: Buffer.concat(chunks),
      });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => server.close());
  const { port } = server.address() as AddressInfo;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`;

  t.true(
    await startTracing({
      service: "messaging",
      region: "us-east-1",
      instanceId: "messaging-1",
      env: { OTEL_TRACES_EXPORTER: "otlp" },
    }),
  );
  await inSpan("exported span", {}, async () => {});
  await stopTracing(); // flushes the batch

  t.is(received.length, 1);
  const [req] = received;
  t.is(req?.path, "/v1/traces");
  t.is(req?.type, "application/x-protobuf");
  const body = req?.body.toString("latin1") ?? "";
  for (const s of ["exported span", "messaging", "messaging-1", "connect-chat", "us-east-1"]) {
    t.true(body.includes(s), `the export carries ${s}`);
  }
});
