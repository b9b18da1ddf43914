import type { Counts } from "./metrics.ts";
import type { ProcessCounters } from "./probe.ts";

/**
 * The IPC protocol between the benchmark (parent) and a target server it forks. A target
 * runs in its own process so that its CPU and memory can be read apart from the load's.
 */

/** TargetRequest is what the benchmark asks a running target. */
export type TargetRequest =
  | { id: number; type: "tokens"; users: string[] }
  | { id: number; type: "memory"; of?: MemoryScope }
  | { id: number; type: "counters" }
  | { id: number; type: "stop" };

/** TargetMemory is a target's memory after a full garbage collection. */
/**
 * MemoryScope is which processes a memory reading covers: the one holding the connections
 * (the idle-connection figure), or every Node process of the target (a soak's live heap).
 */
export type MemoryScope = "connections" | "all";

export interface TargetMemory {
  rssBytes: number;
  heapUsedBytes: number;
  /** externalBytes is memory held by Buffers and other objects outside the JS heap. */
  externalBytes: number;
}

/**
 * TargetCounters are a target's work so far, cumulative; the benchmark takes their difference
 * over a step's window. Targets without services report only their processes.
 */
export interface TargetCounters {
  /** processes: collections and allocation of each Node process, by what it runs ("target" is
   * the target's own process; a multi-process target adds each service). */
  processes: Record<string, ProcessCounters>;
  /** rpcs: RPCs the services served, by method (failures as `method code`). */
  rpcs: Counts;
  /** busPublished and busConsumed: bus records, by topic (consumed: by every consumer group). */
  busPublished: Counts;
  busConsumed: Counts;
}

/** TargetMessage is what a target tells the benchmark. */
export type TargetMessage =
  | { type: "ready"; url: string; description: string }
  | { type: "failed"; error: string }
  | {
      type: "reply";
      id: number;
      tokens?: string[];
      memory?: TargetMemory;
      counters?: TargetCounters;
      error?: string;
    };
