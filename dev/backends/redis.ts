import type { ChildProcess } from "node:child_process";
import { Redis } from "ioredis";
import { freePort, killProcess, spawnLogged, stopProcess } from "./processes.ts";

/** RedisServer is a redis-server started by a test on a free loopback port. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** restart stops the server (losing its data, as a failover would) and starts it again. */
  restart(): Promise<void>;
  /** kill ends the server with SIGKILL; start runs it again, empty. */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** signal sends a signal to the server (SIGSTOP / SIGCONT freeze and thaw it). */
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/** startRedis starts redis-server without persistence and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const start = async () => {
    const started = spawnLogged("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
    ]);
    proc = started.proc;
    const probe = new Redis({
      port,
      host: "127.0.0.1",
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on("error", () => {}); // refused connections are expected until the server is up
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        if (Date.now() > deadline)
          throw new Error(`redis-server did not start:\n${started.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async restart() {
      if (proc) await stopProcess(proc);
      await start();
    },
    async kill() {
      if (proc) await killProcess(proc);
    },
    async start() {
      if (proc && proc.exitCode === null && proc.signalCode === null) return;
      await start();
    },
    signal(sig) {
      if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
    async stop() {
      if (proc) await stopProcess(proc);
    },
  };
}
