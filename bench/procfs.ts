import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * Process accounting from /proc (Linux): CPU time and resident memory of a process and all
 * its descendants, so a target that starts backends (Java, redis-server, Python) is measured
 * whole.
 */

const TICKS_PER_SECOND = getconf("CLK_TCK", 100);
const PAGE_BYTES = getconf("PAGESIZE", 4096);

function getconf(name: string, fallback: number): number {
  try {
    return Number(execFileSync("getconf", [name], { encoding: "utf8" }).trim()) || fallback;
  } catch {
    return fallback;
  }
}

interface Stat {
  pid: number;
  ppid: number;
  cpuSeconds: number;
  rssBytes: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return {
      pid,
      ppid: Number(fields[1]),
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
      rssBytes: Number(fields[21]) * PAGE_BYTES,
    };
  } catch {
    return undefined; // exited meanwhile
  }
}

/** processTree returns `root` and every live descendant. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const s = readStat(pid);
    if (!s) continue;
    const list = children.get(s.ppid) ?? [];
    list.push(pid);
    children.set(s.ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop() as number;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** treeUsage sums CPU seconds (user + system) and resident memory over a process tree. */
export function treeUsage(root: number): { cpuSeconds: number; rssBytes: number } {
  let cpuSeconds = 0;
  let rssBytes = 0;
  for (const pid of processTree(root)) {
    const s = readStat(pid);
    if (!s) continue;
    cpuSeconds += s.cpuSeconds;
    rssBytes += s.rssBytes;
  }
  return { cpuSeconds, rssBytes };
}

/**
 * treeUsageByProcess splits a tree's CPU seconds by what each process is (see processLabel),
 * summing processes of the same kind: which service or backend the time went to.
 */
export function treeUsageByProcess(root: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of processTree(root)) {
    const s = readStat(pid);
    if (!s) continue;
    const label = pid === root ? "target" : processLabel(pid);
    out[label] = (out[label] ?? 0) + s.cpuSeconds;
  }
  return out;
}

/**
 * processLabel names a process of a target's tree: the service a `node services/<name>/main.ts`
 * runs, or the backend program (redis-server, the mock Kafka's python, DynamoDB Local's java).
 */
export function processLabel(pid: number): string {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return "exited";
  }
  const service = argv.map((a) => /services\/([a-z-]+)\/main\.ts$/.exec(a)?.[1]).find(Boolean);
  if (service) return service;
  const program = (argv[0] ?? "").split("/").pop() ?? "";
  if (program.startsWith("redis-server")) return "redis";
  if (program.startsWith("python") && argv.some((a) => a.includes("mock_kafka"))) return "kafka";
  if (program === "java" || argv.some((a) => a.includes("DynamoDBLocal"))) return "dynamodb";
  return program || "unknown";
}

/** pin restricts every thread of a process tree to the given CPUs (`taskset`); false if it cannot. */
export function pin(root: number, cpus: string): boolean {
  try {
    for (const pid of processTree(root)) {
      execFileSync("taskset", ["-a", "-cp", cpus, String(pid)], { stdio: "ignore" });
    }
    return true;
  } catch {
    return false;
  }
}
