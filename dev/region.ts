import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startLocalBackends } from "./backends/local.ts";
import { freePort, stopProcess } from "./backends/processes.ts";
import { DEV_AUDIENCE, type DevIssuer, startDevIssuer } from "./issuer.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** ServiceProcess is one service task running as its own process. */
export interface ServiceProcess {
  readonly name: string;
  readonly url: string;
  readonly env: NodeJS.ProcessEnv;
  /** output is the tail of what the process printed (its JSON log). */
  output(): string;
  /** kill stops it at once (SIGKILL), as a crashed task would. */
  kill(): Promise<void>;
  /** stop asks it to drain and exit (SIGTERM), as ECS does. */
  stop(): Promise<void>;
  /** start starts it again with the same configuration (and optional extra variables). */
  start(extraEnv?: NodeJS.ProcessEnv): Promise<void>;
}

/** ProcessRegion is a region as separate processes on the real local backends. */
export interface ProcessRegion {
  readonly region: string;
  readonly issuer: DevIssuer;
  readonly processes: Map<string, ServiceProcess>;
  /** gatewayUrls are the WebSocket URLs of the gateway instances. */
  readonly gatewayUrls: string[];
  process(name: string): ServiceProcess;
  stop(): Promise<void>;
}

/**
 * startProcessRegion starts the local real backends (DynamoDB Local, redis-server,
 * librdkafka's mock Kafka) and then a region as separate processes, as ECS would run it:
 * persistence, notification, two messaging tasks and two gateway tasks, each its own
 * `node services/<name>/main.ts`. Gateway 1 calls messaging 1 and gateway 2 messaging 2
 * (Service Connect would balance them); both messaging tasks share their consumer groups.
 */
export async function startProcessRegion(
  opts: { region?: string; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ProcessRegion> {
  const region = opts.region ?? "local";
  const log = opts.log ?? (() => {});
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const [backends, issuer] = await Promise.all([startLocalBackends(), startDevIssuer()]);
    stops.push(
      () => backends.stop(),
      () => issuer.close(),
    );
    log(`backends: ${backends.description}`);

    const names = [
      "persistence",
      "notification",
      "messaging-1",
      "messaging-2",
      "gateway-1",
      "gateway-2",
    ];
    const ports = new Map<string, number>();
    for (const name of names) ports.set(name, await freePort());
    const url = (name: string) => `http://127.0.0.1:${ports.get(name)}`;
    const common: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      CHAT_REGION: region,
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      ...backends.env,
      KAFKA_SESSION_TIMEOUT_MS: "6000",
      KAFKA_MAX_WAIT_MS: "100",
      PERSISTENCE_URL: url("persistence"),
      NOTIFICATION_URL: url("notification"),
      AUTH_JWKS_URL: issuer.jwksUrl,
      AUTH_ISSUER: issuer.issuer,
      AUTH_AUDIENCE: DEV_AUDIENCE,
      ...opts.env,
    };
    const processes = new Map<string, ServiceProcess>();
    for (const name of names) {
      const service = name.replace(/-\d$/, "");
      const instance = name.endsWith("-2") ? "2" : "1";
      const env: NodeJS.ProcessEnv = {
        ...common,
        PORT: String(ports.get(name)),
        INSTANCE_ID: `${service}-${instance}`,
        MESSAGING_URL: url(`messaging-${instance}`),
      };
      const p = serviceProcess(name, service, url(name), env);
      processes.set(name, p);
      stops.push(() => p.stop());
    }
    // Persistence first: the others call it as soon as they serve.
    await processes.get("persistence")?.start();
    await Promise.all(names.slice(1).map((n) => processes.get(n)?.start()));
    log(
      `region ${region} is up: gateways ${names
        .filter((n) => n.startsWith("gateway"))
        .map((n) => url(n))
        .join(", ")}`,
    );
    return {
      region,
      issuer,
      processes,
      gatewayUrls: ["gateway-1", "gateway-2"].map((n) => `${url(n).replace(/^http/, "ws")}/ws`),
      process(name) {
        const p = processes.get(name);
        if (!p) throw new Error(`no process ${name}`);
        return p;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

function serviceProcess(
  name: string,
  service: string,
  url: string,
  env: NodeJS.ProcessEnv,
): ServiceProcess {
  let proc: ChildProcess | undefined;
  let output = "";
  return {
    name,
    url,
    env,
    output: () => output,
    async start(extraEnv = {}) {
      proc = spawn(
        process.execPath,
        ["--disable-warning=TimeoutNegativeWarning", `services/${service}/main.ts`],
        { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] },
      );
      const keep = (d: Buffer) => {
        output = (output + d.toString()).slice(-50_000);
      };
      proc.stdout?.on("data", keep);
      proc.stderr?.on("data", keep);
      const started = proc;
      const killOnExit = () => started.kill("SIGKILL");
      process.once("exit", killOnExit);
      started.once("exit", () => process.off("exit", killOnExit));
      await waitServing(url, started, () => output);
    },
    async kill() {
      if (proc) await stopProcess(proc, 0);
    },
    async stop() {
      if (proc) await stopProcess(proc, 25_000);
    },
  };
}

/** waitServing polls /healthz until the service reports SERVING. */
async function waitServing(url: string, proc: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${url} exited during start:\n${output()}`);
    }
    try {
      const res = await fetch(`${url}/healthz`);
      await res.body?.cancel();
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not become healthy:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
