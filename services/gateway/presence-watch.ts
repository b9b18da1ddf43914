import { create } from "@bufbuild/protobuf";
import { type ServerFrame, ServerFrameSchema } from "../../gen/chat/v1/client_pb.ts";
import type { Presence } from "../../gen/chat/v1/types_pb.ts";

/** Watcher is a connection that follows users' presence. */
export interface Watcher {
  send(frame: ServerFrame): void;
}

interface RegionState {
  online: boolean;
  /** expiresAtMs ends an online state no lease renewed (its region or gateway died). */
  expiresAtMs: number;
  changedAtMs: bigint;
}

/**
 * PresenceWatch keeps, for the users this gateway instance's connections watch, each region's
 * view (from presence events and leases of every region, this one included) and tells the
 * watchers whenever the merged view changes: online anywhere is online. A region's online
 * state lasts as long as its leases keep renewing it, so the users of a region that died (or
 * of a gateway that crashed) go offline for their watchers within one lease.
 */
export class PresenceWatch {
  readonly #now: () => number;
  /** watched user → watchers */
  readonly #watchers = new Map<string, Set<Watcher>>();
  /** watcher → users it watches */
  readonly #watching = new Map<Watcher, Set<string>>();
  /** watched user → region → state */
  readonly #state = new Map<string, Map<string, RegionState>>();

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
  }

  /**
   * watch replaces what `watcher` follows with `users`, whose current presence (a snapshot
   * with the regions each is online in) seeds the state; `ttlMs` is the lease it counts on.
   */
  watch(watcher: Watcher, users: Presence[], ttlMs: number): void {
    this.unwatch(watcher);
    if (users.length === 0) return;
    this.#watching.set(watcher, new Set(users.map((u) => u.userId)));
    const now = this.#now();
    for (const u of users) {
      let set = this.#watchers.get(u.userId);
      if (!set) {
        set = new Set();
        this.#watchers.set(u.userId, set);
      }
      set.add(watcher);
      const byRegion = this.#state.get(u.userId) ?? new Map<string, RegionState>();
      for (const [region, s] of byRegion) if (!u.regions.includes(region)) s.online = false;
      for (const region of u.regions) {
        byRegion.set(region, {
          online: true,
          expiresAtMs: now + ttlMs,
          changedAtMs: u.changedAtMs,
        });
      }
      this.#state.set(u.userId, byRegion);
    }
  }

  /** unwatch stops `watcher` following anyone (it closed). */
  unwatch(watcher: Watcher): void {
    for (const u of this.#watching.get(watcher) ?? []) {
      const set = this.#watchers.get(u);
      set?.delete(watcher);
      if (set?.size === 0) {
        this.#watchers.delete(u);
        this.#state.delete(u);
      }
    }
    this.#watching.delete(watcher);
  }

  /** changed applies one region's report that a user came online or went offline. */
  changed(p: Presence, region: string, ttlMs: number): void {
    this.#update(p.userId, (byRegion) => {
      byRegion.set(region, {
        online: p.online,
        expiresAtMs: this.#now() + ttlMs,
        changedAtMs: p.changedAtMs,
      });
    });
  }

  /** leased renews a region's online users. */
  leased(region: string, userIds: readonly string[], ttlMs: number): void {
    const expiresAtMs = this.#now() + ttlMs;
    for (const userId of userIds) {
      this.#update(userId, (byRegion) => {
        const s = byRegion.get(region);
        if (s?.online) s.expiresAtMs = expiresAtMs;
        else byRegion.set(region, { online: true, expiresAtMs, changedAtMs: BigInt(this.#now()) });
      });
    }
  }

  /** expire ends online states no lease renewed in time, telling the watchers. */
  expire(): void {
    const now = this.#now();
    for (const [userId, byRegion] of this.#state) {
      const stale = [...byRegion.values()].filter((s) => s.online && s.expiresAtMs <= now);
      if (stale.length === 0) continue;
      this.#update(userId, () => {
        for (const s of stale) {
          s.online = false;
          s.changedAtMs = BigInt(now);
        }
      });
    }
  }

  /** watched is the number of users followed (for tests and metrics). */
  get watched(): number {
    return this.#watchers.size;
  }

  #update(userId: string, change: (byRegion: Map<string, RegionState>) => void): void {
    const watchers = this.#watchers.get(userId);
    if (!watchers) return;
    const byRegion = this.#state.get(userId) ?? new Map<string, RegionState>();
    const before = onlineRegions(byRegion);
    change(byRegion);
    this.#state.set(userId, byRegion);
    const after = onlineRegions(byRegion);
    if (before.length > 0 === after.length > 0 && before.join() === after.join()) return;
    let changedAtMs = 0n;
    for (const s of byRegion.values()) if (s.changedAtMs > changedAtMs) changedAtMs = s.changedAtMs;
    const frame = create(ServerFrameSchema, {
      kind: {
        case: "presence",
        value: { userId, online: after.length > 0, changedAtMs, regions: after },
      },
    });
    for (const w of watchers) w.send(frame);
  }
}

function onlineRegions(byRegion: Map<string, RegionState>): string[] {
  return [...byRegion]
    .filter(([, s]) => s.online)
    .map(([r]) => r)
    .sort();
}
