import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { stopProcess } from "./processes.ts";

const LAUNCHER = fileURLToPath(new URL("./mock_kafka.py", import.meta.url));

/** MockKafka is a librdkafka mock cluster started by a test or a local run. */
export interface MockKafka {
  /** brokers are the bootstrap addresses, host:port. */
  readonly brokers: string[];
  /** createTopic creates a topic (Kafka admin requests do not work against the mock). */
  createTopic(name: string, partitions: number, replication?: number): Promise<void>;
  /** failNext makes the next `count` requests of a Kafka API (by key) fail with an error code. */
  failNext(apiKey: number, errorCode: number, count: number): Promise<void>;
  /** down stops a broker from accepting connections (-1: all of them); up brings it back. */
  down(brokerId: number): Promise<void>;
  up(brokerId: number): Promise<void>;
  /** signal sends a signal to the cluster's process (SIGSTOP / SIGCONT freeze and thaw it). */
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

/** startMockKafka starts a mock cluster of `brokers` brokers on loopback ports. */
export async function startMockKafka(opts: { brokers?: number } = {}): Promise<MockKafka> {
  const proc = spawn("python3", [LAUNCHER, String(opts.brokers ?? 1)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  proc.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-10_000);
  });
  const lines = createInterface({ input: proc.stdout });
  const replies: Array<(line: string) => void> = [];
  let bootstrap!: (line: string) => void;
  const first = new Promise<string>((resolve, reject) => {
    bootstrap = resolve;
    proc.once("exit", (code) => reject(new Error(`mock kafka exited (${code}): ${stderr}`)));
  });
  let started = false;
  lines.on("line", (line) => {
    if (!started) {
      started = true;
      bootstrap(line);
      return;
    }
    replies.shift()?.(line);
  });
  const line = await first;
  const m = /^BOOTSTRAP (\S+)$/.exec(line);
  if (!m?.[1]) throw new Error(`mock kafka said ${line}`);
  const command = (cmd: string) =>
    new Promise<void>((resolve, reject) => {
      replies.push((reply) => (reply === "OK" ? resolve() : reject(new Error(`${cmd}: ${reply}`))));
      proc.stdin.write(`${cmd}\n`);
    });
  return {
    brokers: m[1].split(","),
    createTopic: (name, partitions, replication = 1) =>
      command(`create ${name} ${partitions} ${replication}`),
    down: (id) => command(`down ${id}`),
    failNext: (apiKey, errorCode, count) => command(`error ${apiKey} ${errorCode} ${count}`),
    up: (id) => command(`up ${id}`),
    signal(sig) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(sig);
    },
    async stop() {
      proc.stdin.end();
      await stopProcess(proc, 3_000);
    },
  };
}
