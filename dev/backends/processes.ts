import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createServer } from "node:net";

/**
 * freePort finds a free loopback port for a child process to listen on. It picks from below
 * the kernel's ephemeral range (32768 and up), where ports handed out by listen(0) elsewhere
 * (every test's own servers) never land, so that no other process takes it before the child
 * binds it; only two picks of the same random port could still meet.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  return listenPort(0);
}

function canListen(port: number): Promise<boolean> {
  return listenPort(port).then(
    () => true,
    () => false,
  );
}

function listenPort(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(port, "127.0.0.1", () => {
      const { port: bound } = srv.address() as { port: number };
      srv.close(() => resolve(bound));
    });
  });
}

/** which returns the path of a program on PATH, or undefined. */
export function which(program: string): string | undefined {
  try {
    return (
      execFileSync("sh", ["-c", `command -v ${program}`], { encoding: "utf8" }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

/**
 * requireProgram decides what a suite does without a backend's program: under CI=true the
 * suite fails (CI must install it), elsewhere it is skipped with a note saying how to get it.
 */
export function requireProgram(
  program: string,
  install: string,
): { available: boolean; why: string } {
  if (which(program)) return { available: true, why: "" };
  const why = `${program} is not installed (${install})`;
  if (process.env.CI === "true") throw new Error(`${why}; .ci/run must install it`);
  return { available: false, why };
}

/** stopProcess sends SIGTERM, then SIGKILL if the process has not exited in `graceMs`. */
export async function stopProcess(proc: ChildProcess, graceMs = 5_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

const children = new Set<ChildProcess>();

/**
 * killOnExit SIGKILLs a child process if this process exits first (a crashed test must not
 * leave JVMs and services behind). One exit listener serves every child.
 */
export function killOnExit(proc: ChildProcess): void {
  if (children.size === 0) {
    process.once("exit", () => {
      for (const c of children) c.kill("SIGKILL");
    });
  }
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
}

/** killProcess ends a process with SIGKILL at once, as a crash or a lost host would. */
export async function killProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  proc.kill("SIGKILL");
  await exited;
}

/** spawnLogged starts a program whose output is kept (for failure messages), not printed. */
export function spawnLogged(program: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const proc = spawn(program, args, { env, stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  return { proc, output: () => output };
}

/** requireLibrary is requireProgram for a shared library (looked up with ldconfig). */
export function requireLibrary(
  soname: string,
  install: string,
): { available: boolean; why: string } {
  let found = false;
  try {
    found = execFileSync("ldconfig", ["-p"], { encoding: "utf8" }).includes(soname);
  } catch {
    found = false;
  }
  if (found) return { available: true, why: "" };
  const why = `${soname} is not installed (${install})`;
  if (process.env.CI === "true") throw new Error(`${why}; .ci/run must install it`);
  return { available: false, why };
}
