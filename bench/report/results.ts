import type { IdleResult } from "../load/idle.ts";
import type { SweepResult } from "../load/sweep.ts";
import type { TargetName } from "../targets/launch.ts";

/** TargetResult is everything measured on one target. */
export interface TargetResult {
  name: TargetName;
  description: string;
  sweep?: SweepResult;
  idle?: IdleResult;
  /** skipped says why the target did not run (a missing backend program). */
  skipped?: string;
  /** error is what stopped a target that failed. */
  error?: string;
}

/** BenchParams are the scenario's parameters. */
export interface BenchParams {
  /** generator: the load's clients (light: pre-encoded frames; sdk: the client libraries). */
  generator: "light" | "sdk";
  connections: number;
  groupSize: number;
  messageBytes: number;
  startSendsPerSecond: number;
  maxSteps: number;
  warmupSeconds: number;
  durationSeconds: number;
  sloP99Ms: number;
  idleConnections: number;
  pinned: boolean;
}

/** BenchResults is one run of `npm run bench`, as written to results.json. */
export interface BenchResults {
  startedAt: string;
  finishedAt: string;
  command: string;
  commit: string;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    os: string;
    node: string;
  };
  params: BenchParams;
  targets: TargetResult[];
}
