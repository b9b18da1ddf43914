import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import {
  type Audience,
  generateKeySet,
  type Identity,
  type InternalKeySet,
  OPERATOR_MAX_TTL_S,
  signerOf,
} from "../services/shared/internal-auth.ts";
import { type LocalBackends, startLocalBackends } from "./backends/local.ts";
import { freePort, killOnExit, killProcess, stopProcess } from "./backends/processes.ts";
import { DEV_AUDIENCE, type DevIssuer, startDevIssuer } from "./issuer.ts";
import { TcpProxy } from "./tcp-proxy.ts";

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
  /** signal sends a signal to the running process (SIGSTOP / SIGCONT freeze and thaw it). */
  signal(sig: NodeJS.Signals): void;
}

/** ProcessRegion is a region as separate processes on the real local backends. */
export interface ProcessRegion {
  readonly region: string;
  readonly issuer: DevIssuer;
  readonly processes: Map<string, ServiceProcess>;
  /** internalKeys are the key pairs the region's services authenticate each other with. */
  readonly internalKeys: InternalKeySet;
  /** internalToken signs an operator's (read-only) token for calling the service `to`. */
  internalToken(to: Audience, userId?: string): Promise<string>;
  /** gatewayUrls are the WebSocket URLs of the gateway instances. */
  readonly gatewayUrls: string[];
  process(name: string): ServiceProcess;
  /** killAll SIGKILLs every service process at once (a lost region); startAll starts them again. */
  killAll(): Promise<void>;
  startAll(): Promise<void>;
  /** signalAll sends a signal to every service process (SIGSTOP freezes the region). */
  signalAll(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/** ProcessRegionOptions configure a region of separate processes. */
export interface ProcessRegionOptions {
  region?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  /** backends and issuer, when given, are used (and left running) instead of new ones. */
  backends?: LocalBackends;
  issuer?: DevIssuer;
  /** tasks says how many gateway and messaging tasks run (default two of each). */
  tasks?: { gateways: number; messaging: number };
  /**
   * store "memory" runs persistence on the in-memory store instead of DynamoDB Local (which is
   * then not started); only when the backends are started here. Default "dynamodb".
   */
  store?: "dynamodb" | "memory";
  /**
   * messagingProxy false lets each gateway call its own messaging task directly, without the
   * failover proxy in this process (the benchmark: one messaging task, nothing to fail over
   * to, and no proxy's CPU in the figures). Default true.
   */
  messagingProxy?: boolean;
}

/**
 * startProcessRegion starts the local real backends (DynamoDB Local, redis-server,
 * librdkafka's mock Kafka) and then a region as separate processes, as ECS would run it:
 * persistence, notification, two messaging tasks and two gateway tasks, each its own
 * `node services/<name>/main.ts`. Gateway n calls messaging n, and another messaging task
 * while that one is down (as Service Connect's proxy would); the messaging tasks share their
 * consumer groups.
 */
export async function startProcessRegion(opts: ProcessRegionOptions = {}): Promise<ProcessRegion> {
  const region = opts.region ?? "local";
  const log = opts.log ?? (() => {});
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const [backends, issuer] = await Promise.all([
      opts.backends ?? startLocalBackends({ store: opts.store }),
      opts.issuer ?? startDevIssuer(),
    ]);
    if (!opts.backends) stops.push(() => backends.stop());
    if (!opts.issuer) stops.push(() => issuer.close());
    log(`${region} backends: ${backends.description}`);

    const tasks = opts.tasks ?? { gateways: 2, messaging: 2 };
    const numbered = (service: string, n: number) =>
      Array.from({ length: n }, (_, i) => `${service}-${i + 1}`);
    const gateways = numbered("gateway", tasks.gateways);
    const names = [
      "persistence",
      "notification",
      ...numbered("messaging", tasks.messaging),
      ...gateways,
    ];
    const ports = new Map<string, number>();
    for (const name of names) ports.set(name, await freePort());
    const url = (name: string) => `http://127.0.0.1:${ports.get(name)}`;
    // Each service signs its calls with its own key and knows every service's public key.
    const internalKeys = generateKeySet("dev");
    const operator = signerOf(internalKeys, "operator", OPERATOR_MAX_TTL_S);
    issuer.trustInternal(region, operator);
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
      INTERNAL_AUTH_PEERS: internalKeys.peers,
      ...opts.env,
    };
    // Each gateway calls its own messaging task, and the others when that one is down, as
    // Service Connect's proxy would: a TCP proxy per gateway with the tasks in that order.
    const messagingTasks = numbered("messaging", tasks.messaging);
    const messagingFor = new Map<string, string>();
    for (const [i, gateway] of gateways.entries()) {
      const own = i % messagingTasks.length;
      if (opts.messagingProxy === false) {
        messagingFor.set(gateway, url(messagingTasks[own] as string));
        continue;
      }
      const order = [...messagingTasks.slice(own), ...messagingTasks.slice(0, own)];
      const proxy = await TcpProxy.start(
        order.map((m) => url(m)),
        { balance: "first-available" },
      );
      stops.push(() => proxy.close());
      messagingFor.set(gateway, `http://127.0.0.1:${proxy.port}`);
    }
    const processes = new Map<string, ServiceProcess>();
    for (const name of names) {
      const service = name.replace(/-\d+$/, "");
      const instance = /-(\d+)$/.exec(name)?.[1] ?? "1";
      const env: NodeJS.ProcessEnv = {
        ...common,
        PORT: String(ports.get(name)),
        // Gateways also listen for operators; each on a port of its own.
        ...(service === "gateway" ? { ADMIN_PORT: String(await freePort()) } : {}),
        INSTANCE_ID: `${region}-${service}-${instance}`,
        ...(service === "persistence"
          ? {}
          : { INTERNAL_AUTH_KEY: internalKeys.privateKeys[service as Identity] }),
        MESSAGING_URL: messagingFor.get(name) ?? url("messaging-1"),
      };
      const p = serviceProcess(name, service, url(name), env);
      processes.set(name, p);
      stops.push(() => p.stop());
    }
    // Persistence first: the others call it as soon as they serve.
    const startAll = async () => {
      await processes.get("persistence")?.start();
      await Promise.all(names.slice(1).map((n) => processes.get(n)?.start()));
    };
    await startAll();
    log(`region ${region} is up: gateways ${gateways.map((n) => url(n)).join(", ")}`);
    return {
      region,
      issuer,
      processes,
      internalKeys,
      internalToken: (to, userId) =>
        operator.token(to, userId === undefined ? undefined : { userId, deviceId: "" }),
      gatewayUrls: gateways.map((n) => `${url(n).replace(/^http/, "ws")}/ws`),
      process(name) {
        const p = processes.get(name);
        if (!p) throw new Error(`no process ${name}`);
        return p;
      },
      async killAll() {
        await Promise.all([...processes.values()].map((p) => p.kill()));
      },
      startAll,
      signalAll(sig) {
        for (const p of processes.values()) p.signal(sig);
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
      killOnExit(started);
      await waitServing(url, started, () => output);
    },
    async kill() {
      if (proc) await killProcess(proc);
    },
    signal(sig) {
      if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
    async stop() {
      if (proc) await stopProcess(proc, 25_000);
    },
  };
}

/** waitServing polls /healthz until the service reports SERVING. */
async function waitServing(url: string, proc: ChildProcess, output: () => string): Promise<void> {
  // A task started on a busy machine (a chaos run) may take a while to join its Kafka groups.
  const deadline = Date.now() + 90_000;
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
