import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { pin, treeUsage, treeUsageByProcess } from "../procfs.ts";
import type {
  MemoryScope,
  TargetCounters,
  TargetMemory,
  TargetMessage,
  TargetRequest,
} from "./protocol.ts";

/**
 * TARGETS are the servers the benchmark can run, by name. startScale scales the sweep's
 * start rate: DynamoDB Local (a JVM) shares the target's one core with the region and the
 * other backends and manages a few sends per second, so starting where the others do would
 * bury its later steps under the first one's backlog. The mesh (four service processes and
 * their Kafka consumers on one core) saturates near 30 sends/s here, and a backlog left in
 * Kafka takes its consumers long to work off: it starts at 1/8.
 */
export const TARGETS = {
  "connect-chat": {
    entry: "connect-chat.ts",
    args: ["embedded"],
    protocol: "chat.v1",
    startScale: 1,
  },
  "connect-chat-real": {
    entry: "connect-chat.ts",
    args: ["real"],
    protocol: "chat.v1",
    startScale: 1 / 32,
  },
  "connect-chat-mesh": {
    entry: "connect-chat-mesh.ts",
    args: [],
    protocol: "chat.v1",
    startScale: 1 / 8,
  },
  "raw-ws": { entry: "raw-ws.ts", args: [], protocol: "chat.v1", startScale: 1 },
  "socket.io": { entry: "socket-io.ts", args: [], protocol: "socket.io", startScale: 1 },
} as const;

/** TargetName names a benchmark target. */
export type TargetName = keyof typeof TARGETS;

/** Target is a running target server, seen from the benchmark. */
export interface Target {
  readonly name: TargetName;
  readonly url: string;
  readonly description: string;
  readonly protocol: "chat.v1" | "socket.io";
  /** tokens returns each user's credential. */
  tokens(users: string[]): Promise<string[]>;
  /**
   * memory collects garbage and reads memory in the target's process holding the connections,
   * or with "all" in every Node process of the target, summed.
   */
  memory(of?: MemoryScope): Promise<TargetMemory>;
  /** usage reads CPU seconds and resident memory of the target and its child processes. */
  usage(): { cpuSeconds: number; rssBytes: number };
  /** usageByProcess splits the tree's CPU seconds by service or backend (procfs.ts). */
  usageByProcess(): Record<string, number>;
  /** counters reads the target's work and its processes' collections so far (cumulative). */
  counters(): Promise<TargetCounters>;
  stop(): Promise<void>;
}

/** RequestBody is a TargetRequest before it is numbered. */
type RequestBody = TargetRequest extends infer R
  ? R extends unknown
    ? Omit<R, "id">
    : never
  : never;

/**
 * launchTarget forks a target server, waits until it listens, and pins it to `cpus` if given.
 * With `profileDir`, the target writes a V8 CPU profile there when it stops.
 */
export async function launchTarget(
  name: TargetName,
  opts: { cpus?: string; profileDir?: string },
): Promise<Target> {
  const spec = TARGETS[name];
  const entry = fileURLToPath(new URL(spec.entry, import.meta.url));
  const child: ChildProcess = fork(entry, [...spec.args], {
    execArgv: [
      "--expose-gc",
      "--disable-warning=TimeoutNegativeWarning",
      // Extra flags for the targets (e.g. --trace-gc), from the environment.
      ...(process.env.BENCH_TARGET_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
      ...(opts.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}`] : []),
    ],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    // A target of several processes passes the profile on to them (connect-chat-mesh).
    env: { ...process.env, ...(opts.profileDir ? { BENCH_PROFILE_DIR: opts.profileDir } : {}) },
  });
  const pid = child.pid as number;
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  let nextId = 1;
  const pending = new Map<number, (m: Extract<TargetMessage, { type: "reply" }>) => void>();
  const ready = new Promise<Extract<TargetMessage, { type: "ready" }>>((resolve, reject) => {
    child.on("message", (m: TargetMessage) => {
      if (m.type === "ready") resolve(m);
      else if (m.type === "failed") reject(new Error(`${name} failed to start:\n${m.error}`));
      else pending.get(m.id)?.(m);
    });
    child.once("exit", (code) => reject(new Error(`${name} exited during start (${code})`)));
  });
  const ask = (req: RequestBody, timeoutMs = 120_000) =>
    new Promise<Extract<TargetMessage, { type: "reply" }>>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`${name} did not answer ${req.type}`));
      }, timeoutMs);
      pending.set(id, (m) => {
        clearTimeout(timer);
        pending.delete(id);
        if (m.error) reject(new Error(`${name}: ${m.error}`));
        else resolve(m);
      });
      child.send({ ...req, id } as TargetRequest);
    });
  const started = await ready;
  if (opts.cpus) pin(pid, opts.cpus);
  return {
    name,
    url: started.url,
    description: started.description,
    protocol: spec.protocol,
    async tokens(users) {
      const out: string[] = [];
      for (let i = 0; i < users.length; i += 1000) {
        const reply = await ask({ type: "tokens", users: users.slice(i, i + 1000) });
        out.push(...(reply.tokens ?? []));
      }
      return out;
    },
    async memory(of: MemoryScope = "connections") {
      const reply = await ask({ type: "memory", of });
      if (!reply.memory) throw new Error(`${name} sent no memory figures`);
      return reply.memory;
    },
    usage: () => treeUsage(pid),
    usageByProcess: () => treeUsageByProcess(pid),
    async counters() {
      const reply = await ask({ type: "counters" }, 30_000);
      if (!reply.counters) throw new Error(`${name} sent no counters`);
      return reply.counters;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      await ask({ type: "stop" }, 60_000).catch(() => child.kill("SIGKILL"));
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
      process.off("exit", killOnExit);
    },
  };
}
