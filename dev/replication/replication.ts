/**
 * The local stand-ins for what AWS replicates between regions (DynamoDB Global Tables, MSK
 * Replicator / MirrorMaker 2). Development tools only: they run two regions on one machine for
 * local runs and tests and are never part of a deployment.
 */

/** ReplicationOptions tune a stand-in. */
export interface ReplicationOptions {
  /** delayMs is how long after the source wrote an item (or record) it appears in the target. */
  delayMs?: number;
  /** jitterMs adds a random 0..jitterMs to each item's delay, so items arrive out of order. */
  jitterMs?: number;
  /** onError hears a replication failure (default: printed to stderr). */
  onError?: (err: Error) => void;
  /**
   * lose is a fault switch for proving checkers: an item (`<pk> <sk>`) or record
   * (`<topic> <key>`) it returns true for is silently lost instead of replicated.
   */
  lose?: (what: string) => boolean;
}

/** ReplicationLag says how far a stand-in is behind its source. */
export interface ReplicationLag {
  /** pending counts items (or records) read from the source and not yet applied. */
  pending: number;
  /** oldestMs is the age of the oldest pending item, 0 when nothing is pending. */
  oldestMs: number;
  /** applied counts items applied since the start. */
  applied: number;
  /** error is set once replication failed for good (a broken single-writer rule). */
  error?: string;
}

/** Replication is one direction of a stand-in: source region → target region. */
export interface Replication {
  /** name says what is replicated where, e.g. "table us-east-1 → eu-west-1". */
  readonly name: string;
  /** pause holds everything back (a replication partition); resume lets it through again. */
  pause(): void;
  resume(): void;
  readonly paused: boolean;
  lag(): ReplicationLag;
  /**
   * drained resolves once everything the source had written when it was called has been
   * applied. It rejects if replication failed, and waits (does not resolve) while paused.
   */
  drained(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * defaultOnError prints a replication failure loudly, and a transient one (the target is down
 * and the item will be retried: name ReplicationRetry) as a plain line.
 */
export function defaultOnError(name: string): (err: Error) => void {
  return (err) =>
    process.stderr.write(
      err.name === "ReplicationRetry"
        ? `replication ${name}: ${err.message}\n`
        : `\n*** replication ${name} FAILED: ${err.message}\n\n`,
    );
}
