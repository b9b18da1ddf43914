/**
 * The IPC protocol between the benchmark (parent) and a target server it forks. A target
 * runs in its own process so that its CPU and memory can be read apart from the load's.
 */

/** TargetRequest is what the benchmark asks a running target. */
export type TargetRequest =
  | { id: number; type: "tokens"; users: string[] }
  | { id: number; type: "memory" }
  | { id: number; type: "stop" };

/** TargetMemory is a target's memory after a full garbage collection. */
export interface TargetMemory {
  rssBytes: number;
  heapUsedBytes: number;
  /** externalBytes is memory held by Buffers and other objects outside the JS heap. */
  externalBytes: number;
}

/** TargetMessage is what a target tells the benchmark. */
export type TargetMessage =
  | { type: "ready"; url: string; description: string }
  | { type: "failed"; error: string }
  | { type: "reply"; id: number; tokens?: string[]; memory?: TargetMemory; error?: string };
