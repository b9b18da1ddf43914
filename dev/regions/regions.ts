import type { Audience } from "../../services/shared/internal-auth.ts";
import type { DevIssuer } from "../issuer.ts";
import type { Replication, ReplicationLag } from "../replication/replication.ts";

/**
 * Several regions on one machine, active-active, with the replication stand-ins between them:
 * what `npm run dev:regions` runs and what tests (and the failover checker) drive. Two
 * implementations: embedded (every region in this process on the in-memory backends) and
 * processes (every service of every region its own process, on each region's own DynamoDB
 * Local, redis-server and mock Kafka).
 */

/** RegionHandle is one running region. */
export interface RegionHandle {
  readonly name: string;
  /** gatewayUrls are the WebSocket URLs of the region's gateway instances. */
  readonly gatewayUrls: string[];
  /** services names each service instance's base URL (for probes). */
  readonly services: Record<string, string>;
  /** up is false between kill and start. */
  readonly up: boolean;
  /** internalToken signs an operator's (read-only) token for calling the region's service `to`. */
  internalToken(to: Audience, userId?: string): Promise<string>;
  /**
   * kill takes the whole region down at once: every service process is SIGKILLed (embedded:
   * stopped as abruptly as one process allows), nothing drains, and replication to and from it
   * stops where it is, as a regional outage would. Its tables and bus keep what they hold.
   */
  kill(): Promise<void>;
  /** start brings a killed region back over its data; replication resumes and catches up. */
  start(): Promise<void>;
  /**
   * freeze stops every process of the region (SIGSTOP): sockets stay open and nothing answers,
   * a black hole, as a real regional outage often looks; replication to and from it stops.
   * thaw (SIGCONT) lets everything carry on where it was. Only regions of processes can.
   */
  freeze?(): Promise<void>;
  thaw?(): Promise<void>;
}

/** Regions are running regions and the replication between them. */
export interface Regions {
  readonly mode: "embedded" | "processes";
  readonly regions: RegionHandle[];
  region(name: string): RegionHandle;
  /** issuer is the one identity provider every region trusts. */
  readonly issuer: DevIssuer;
  token(userId: string, ttlSeconds?: number): Promise<string>;
  /** replication lists every direction of the table replicator and the topic mirror. */
  readonly replication: Replication[];
  /** partition stops all replication between the regions (both keep serving); heal resumes it. */
  partition(): void;
  heal(): void;
  lag(): Array<ReplicationLag & { name: string; paused: boolean }>;
  /** converged resolves once every running direction has applied everything written so far. */
  converged(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** regionsOf assembles the Regions of a runner from its parts. */
export function regionsOf<H extends RegionHandle>(parts: {
  mode: Regions["mode"];
  handles: H[];
  issuer: DevIssuer;
  control: ReplicationControl;
  stop: () => Promise<void>;
}): Regions & { regions: H[]; region(name: string): H } {
  const { handles, issuer, control } = parts;
  return {
    mode: parts.mode,
    regions: handles,
    region(name) {
      const r = handles.find((h) => h.name === name);
      if (!r) throw new Error(`no region ${name}`);
      return r;
    },
    issuer,
    token: (userId, ttl) => issuer.token(userId, ttl),
    get replication() {
      return control.all;
    },
    partition: () => control.setPartitioned(true),
    heal: () => control.setPartitioned(false),
    lag: () => control.lag(),
    converged: (ms) => control.converged(ms),
    stop: parts.stop,
  };
}

/** REGION_NAMES are the two regions a local run uses unless told otherwise. */
export const REGION_NAMES = ["us-east-1", "eu-west-1"] as const;

/**
 * ReplicationControl keeps every direction of replication paused exactly when one of its ends
 * is down or the regions are partitioned.
 */
export class ReplicationControl {
  readonly #directions: Array<{ from: string; to: string; replication: Replication }> = [];
  readonly #down = new Set<string>();
  #partitioned = false;

  add(from: string, to: string, replication: Replication): void {
    this.#directions.push({ from, to, replication });
    this.#apply();
  }

  /** remove forgets a direction (its replication is closed by the caller). */
  remove(replication: Replication): void {
    const i = this.#directions.findIndex((d) => d.replication === replication);
    if (i >= 0) this.#directions.splice(i, 1);
  }

  /** from lists the directions out of a region. */
  from(region: string): Replication[] {
    return this.#directions.filter((d) => d.from === region).map((d) => d.replication);
  }

  get all(): Replication[] {
    return this.#directions.map((d) => d.replication);
  }

  setUp(region: string, up: boolean): void {
    if (up) this.#down.delete(region);
    else this.#down.add(region);
    this.#apply();
  }

  setPartitioned(partitioned: boolean): void {
    this.#partitioned = partitioned;
    this.#apply();
  }

  lag() {
    return this.#directions.map(({ replication: r }) => ({
      name: r.name,
      paused: r.paused,
      ...r.lag(),
    }));
  }

  async converged(timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      this.#directions
        .filter((d) => !d.replication.paused)
        .map((d) => d.replication.drained(timeoutMs)),
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.#directions.map((d) => d.replication.close()));
  }

  #apply() {
    for (const { from, to, replication } of this.#directions) {
      const hold = this.#partitioned || this.#down.has(from) || this.#down.has(to);
      if (hold && !replication.paused) replication.pause();
      if (!hold && replication.paused) replication.resume();
    }
  }
}
