import type { Session, SessionRegistry } from "../../ports/session-registry.ts";

interface Entry {
  session: Session;
  expiresAt: number;
}

/**
 * MemorySessionRegistry keeps the session registry in this process's memory: it only works
 * when every gateway and messaging instance runs in this one process (`npm start`).
 */
export class MemorySessionRegistry implements SessionRegistry {
  readonly #byUser = new Map<string, Map<string, Entry>>();
  readonly #leases = new Map<string, number>();
  /** region\0user → when the other region's report of the user expires */
  readonly #remote = new Map<string, number>();
  readonly #now: () => number;

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now;
  }

  async register(session: Session, ttlMs: number) {
    const firstOfUser = this.#live(session.userId).length === 0;
    let sessions = this.#byUser.get(session.userId);
    if (!sessions) {
      sessions = new Map();
      this.#byUser.set(session.userId, sessions);
    }
    sessions.set(session.sessionId, { session: { ...session }, expiresAt: this.#now() + ttlMs });
    return { firstOfUser };
  }

  async unregister(session: Session) {
    const sessions = this.#byUser.get(session.userId);
    sessions?.delete(session.sessionId);
    const lastOfUser = this.#live(session.userId).length === 0;
    if (sessions && sessions.size === 0) this.#byUser.delete(session.userId);
    return { lastOfUser };
  }

  async refresh(instanceId: string, sessions: Session[], ttlMs: number) {
    const expiresAt = this.#now() + ttlMs;
    this.#leases.set(instanceId, expiresAt);
    for (const s of sessions) {
      let byId = this.#byUser.get(s.userId);
      if (!byId) {
        byId = new Map();
        this.#byUser.set(s.userId, byId);
      }
      byId.set(s.sessionId, { session: { ...s }, expiresAt });
    }
  }

  async lookup(userIds: string[]) {
    const out = new Map<string, Session[]>();
    for (const userId of userIds) {
      const live = this.#live(userId);
      if (live.length > 0) out.set(userId, live);
    }
    return out;
  }

  async setRemotePresence(
    region: string,
    entries: Array<{ userId: string; online: boolean }>,
    ttlMs: number,
  ) {
    const expiresAt = this.#now() + ttlMs;
    for (const { userId, online } of entries) {
      const key = `${region}\u0000${userId}`;
      if (online) this.#remote.set(key, expiresAt);
      else this.#remote.delete(key);
    }
  }

  async remotePresence(userIds: string[], regions: readonly string[]) {
    const now = this.#now();
    const out = new Map<string, string[]>();
    for (const userId of userIds) {
      for (const region of regions) {
        const key = `${region}\u0000${userId}`;
        const expiresAt = this.#remote.get(key);
        if (expiresAt === undefined) continue;
        if (expiresAt <= now) {
          this.#remote.delete(key);
          continue;
        }
        out.set(userId, [...(out.get(userId) ?? []), region]);
      }
    }
    return out;
  }

  /** onReconnect: an in-process registry never loses its connection. */
  onReconnect(_listener: () => void): () => void {
    return () => {};
  }

  async close() {}

  #live(userId: string): Session[] {
    const now = this.#now();
    const out: Session[] = [];
    const sessions = this.#byUser.get(userId);
    if (!sessions) return out;
    for (const [id, e] of sessions) {
      const lease = this.#leases.get(e.session.instanceId);
      if (e.expiresAt <= now || (lease !== undefined && lease <= now)) {
        sessions.delete(id);
        continue;
      }
      out.push({ ...e.session });
    }
    return out;
  }
}
