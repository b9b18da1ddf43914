// What one unary call between two processes costs in CPU, client and server, for the ways the
// services could call each other: connect-node in the gRPC protocol, connect-node in the
// Connect protocol over HTTP/2 (what services/shared/clients.ts uses), and @grpc/grpc-js at
// both ends for scale. A small message (grpc.health.v1 Check), 8 calls in flight, both
// processes on one CPU as the mesh's are. No interceptors: the protocol stacks alone.
//
//   npm run bench:rpc [-- --calls N]
import { execFileSync, fork } from "node:child_process";
import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "../gen/grpc/health/v1/health_pb.ts";

const STACKS = ["connect-node, gRPC protocol", "connect-node, Connect protocol", "grpc-js"];
const IN_FLIGHT = 8;
const WARMUP = 2_000;

const encode = (schema: DescMessage) => (m: never) => Buffer.from(toBinary(schema, m));
const decode = (schema: DescMessage) => (b: Buffer) => fromBinary(schema, b);
/** CHECK is Health/Check as grpc-js describes a method, (de)serialized by protobuf-es. */
const CHECK = {
  path: "/grpc.health.v1.Health/Check",
  requestStream: false,
  responseStream: false,
  requestSerialize: encode(HealthCheckRequestSchema),
  requestDeserialize: decode(HealthCheckRequestSchema),
  responseSerialize: encode(HealthCheckResponseSchema),
  responseDeserialize: decode(HealthCheckResponseSchema),
};
const serving = () =>
  create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });

/** serve listens with `stack`, prints its port, and answers "cpu" with its CPU µs so far. */
function serve(stack: string): void {
  const ready = (port: number) => process.send?.({ port });
  if (stack.startsWith("connect-node")) {
    const handler = connectNodeAdapter({
      routes: (r) =>
        r.service(Health, {
          check: serving,
          list: () => ({ statuses: {} }),
          watch: async function* () {},
        }),
    });
    const server = http2.createServer(handler);
    server.listen(0, "127.0.0.1", () => ready((server.address() as { port: number }).port));
  } else {
    const server = new grpc.Server();
    server.addService({ check: CHECK } as never, {
      check: (_: unknown, done: (e: null, r: unknown) => void) => done(null, serving()),
    });
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (_, port) =>
      ready(port),
    );
  }
  process.on("message", () => {
    const u = process.cpuUsage();
    process.send?.({ cpuUs: u.user + u.system });
  });
}

/** call makes `calls` calls with `stack` and reports its CPU per call and the rate. */
async function call(stack: string, port: number, calls: number): Promise<void> {
  const baseUrl = `http://127.0.0.1:${port}`;
  let once: () => Promise<unknown>;
  if (stack.startsWith("connect-node")) {
    const transport = stack.endsWith("gRPC protocol")
      ? createGrpcTransport({ baseUrl })
      : createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true });
    const client = createClient(Health, transport);
    once = () => client.check({ service: "bench" });
  } else {
    const Client = grpc.makeGenericClientConstructor({ check: CHECK } as never, "Health");
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as never as {
      check(req: unknown, done: (e: Error | null) => void): void;
    };
    const req = create(HealthCheckRequestSchema, { service: "bench" });
    once = () => new Promise<void>((ok, fail) => client.check(req, (e) => (e ? fail(e) : ok())));
  }
  const run = async (n: number) => {
    let started = 0;
    const lane = async () => {
      while (started++ < n) await once();
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  };
  await run(WARMUP);
  const before = process.cpuUsage();
  const t0 = performance.now();
  await run(calls);
  const used = process.cpuUsage(before);
  const seconds = (performance.now() - t0) / 1000;
  process.send?.({ clientUs: (used.user + used.system) / calls, perSecond: calls / seconds });
}

/** main runs every stack's server and client as two processes and prints the table. */
async function main(calls: number): Promise<void> {
  const pin = canPin();
  console.log(
    `unary grpc.health.v1.Health/Check, ${calls} calls (after ${WARMUP} to warm up), ${IN_FLIGHT} in flight, ${pin ? "both processes on CPU 0" : "unpinned"}; Node ${process.version}\n`,
  );
  console.log("| stack | client µs CPU / call | server µs CPU / call | both | calls/s |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const stack of STACKS) {
    const server = fork(import.meta.filename, ["--serve", stack]);
    const ask = <T>(msg?: string) =>
      new Promise<T>((ok) => {
        server.once("message", (m) => ok(m as T));
        if (msg) server.send(msg);
      });
    const { port } = await ask<{ port: number }>();
    if (pin) execFileSync("taskset", ["-p", "-c", "0", String(server.pid)], { stdio: "ignore" });
    const { cpuUs: before } = await ask<{ cpuUs: number }>("cpu");
    const client = fork(import.meta.filename, [
      "--call",
      stack,
      "--port",
      String(port),
      "--calls",
      String(calls),
    ]);
    if (pin) execFileSync("taskset", ["-p", "-c", "0", String(client.pid)], { stdio: "ignore" });
    const result = await new Promise<{ clientUs: number; perSecond: number }>((ok) =>
      client.once("message", (m) => ok(m as never)),
    );
    const { cpuUs: after } = await ask<{ cpuUs: number }>("cpu");
    const serverUs = (after - before) / (calls + WARMUP);
    server.kill();
    console.log(
      `| ${stack} | ${result.clientUs.toFixed(0)} | ${serverUs.toFixed(0)} | ${(result.clientUs + serverUs).toFixed(0)} | ${Math.round(result.perSecond).toLocaleString("en-US")} |`,
    );
  }
}

/** canPin says whether taskset can pin the processes (Linux with two or more CPUs). */
function canPin(): boolean {
  try {
    execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const { values } = parseArgs({
  options: {
    serve: { type: "string" },
    call: { type: "string" },
    port: { type: "string" },
    calls: { type: "string", default: "20000" },
  },
});
const calls = Number(values.calls);
if (!Number.isInteger(calls) || calls < 100) {
  console.error(`--calls: a whole number of at least 100, not ${values.calls}`);
  process.exit(2);
}
if (values.serve) serve(values.serve);
else if (values.call)
  await call(values.call, Number(values.port), calls).then(() => process.exit(0));
else await main(calls);
