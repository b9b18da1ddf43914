/**
 * SessionRegistry records, per region, which devices of which users are connected to which
 * gateway instance. It is ephemeral and region-local (never replicated): entries expire unless
 * refreshed, and an instance whose lease lapses is treated as gone with all its sessions.
 *
 * Gateways register on connect, unregister on close, and refresh all their live sessions
 * periodically, and at once when the registry comes back after an outage (which restores
 * them after the registry lost its data). Messaging looks
 * users up to find the instances to deliver to.
 *
 * Implementations: MemorySessionRegistry (one process), RedisSessionRegistry.
 */
export interface SessionRegistry {
  /**
   * register adds a session that lives for `ttlMs` unless refreshed. firstOfUser is true when
   * the user had no other live session in this region (the user came online).
   */
  register(session: Session, ttlMs: number): Promise<{ firstOfUser: boolean }>;

  /**
   * unregister removes a session. lastOfUser is true when the user has no live session left in
   * this region (the user went offline).
   */
  unregister(session: Session): Promise<{ lastOfUser: boolean }>;

  /**
   * refresh renews an instance's lease and re-registers all of its live sessions for `ttlMs`
   * (one round trip however many sessions).
   */
  refresh(instanceId: string, sessions: Session[], ttlMs: number): Promise<void>;

  /** lookup returns the live sessions of many users at once (one round trip). */
  lookup(userIds: string[]): Promise<Map<string, Session[]>>;

  /**
   * setRemotePresence records what another region reports of its users (its presence events
   * and leases arrive on the mirrored bus): online for `ttlMs` unless reported again, or offline
   * at once. A region that stops reporting (it died) has its users expire within `ttlMs`.
   */
  setRemotePresence(
    region: string,
    entries: Array<{ userId: string; online: boolean }>,
    ttlMs: number,
  ): Promise<void>;

  /** remotePresence returns, per user, which of `regions` currently report the user online. */
  remotePresence(userIds: string[], regions: readonly string[]): Promise<Map<string, string[]>>;

  /**
   * onReconnect calls `listener` each time the connection to the registry comes back after it
   * was lost: the registry may have lost its data (a Redis restart or failover), so gateways
   * register their sessions again at once rather than at their next refresh. Returns a
   * function that stops listening.
   */
  onReconnect(listener: () => void): () => void;

  close(): Promise<void>;
}

/** Session is one device's connection to one gateway instance. */
export interface Session {
  userId: string;
  deviceId: string;
  sessionId: string;
  instanceId: string;
  connectedAtMs: number;
}
