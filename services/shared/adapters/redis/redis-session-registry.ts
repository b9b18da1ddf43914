import type { Redis } from "ioredis";
import type { Session, SessionRegistry } from "../../ports/session-registry.ts";

/*
 * Layout (all under the configured key prefix, region-local, never replicated):
 *   sessions:<user>    hash: session id → JSON {deviceId, instanceId, connectedAtMs, expiresAt}
 *                      the key expires when its longest-lived session does
 *   lease:<instance>   a gateway instance's lease; sessions of an instance without one are dead
 *   remote:<region>:<user>  another region reports the user online (expires with its lease)
 * Expiry times come from the Redis server's clock (TIME), so gateways with skewed clocks agree.
 * Every operation is one round trip: a Lua script does the read-check-write atomically.
 *
 * Scripts read lease keys they are not given in KEYS, which Redis allows outside cluster mode:
 * this adapter needs a non-clustered Redis (an ElastiCache replication group with cluster mode
 * disabled), which comfortably holds the sessions of millions of connections.
 */

const LIVE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live(key, prefix, now, skip)
  local out = {}
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local s = cjson.decode(all[i + 1])
    if all[i] ~= skip then
      if s.expiresAt <= now or redis.call('EXISTS', prefix .. 'lease:' .. s.instanceId) == 0 and s.leased == 1 then
        redis.call('HDEL', key, all[i])
      else
        s.sessionId = all[i]
        table.insert(out, s)
      end
    end
  end
  return out
end
`;

/** KEYS[1] sessions key; ARGV: prefix, session id, session JSON (without expiry), ttl ms. */
const REGISTER = `${LIVE}
local now = now_ms()
local before = live(KEYS[1], ARGV[1], now, ARGV[2])
local s = cjson.decode(ARGV[3])
s.expiresAt = now + tonumber(ARGV[4])
s.leased = redis.call('EXISTS', ARGV[1] .. 'lease:' .. s.instanceId)
redis.call('HSET', KEYS[1], ARGV[2], cjson.encode(s))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return #before == 0 and 1 or 0
`;

/** KEYS[1] sessions key; ARGV: prefix, session id. Returns 1 when no live session is left. */
const UNREGISTER = `${LIVE}
redis.call('HDEL', KEYS[1], ARGV[2])
local left = live(KEYS[1], ARGV[1], now_ms(), '')
if #left == 0 then redis.call('DEL', KEYS[1]) end
return #left == 0 and 1 or 0
`;

/** KEYS: lease key, then one sessions key per session; ARGV: ttl ms, then session id + JSON pairs. */
const REFRESH = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
for i = 2, #KEYS do
  local s = cjson.decode(ARGV[i * 2 - 1])
  s.expiresAt = now + ttl
  s.leased = 1
  redis.call('HSET', KEYS[i], ARGV[i * 2 - 2], cjson.encode(s))
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
`;

/** KEYS: sessions keys; ARGV[1] prefix. Returns one JSON array of live sessions per key. */
const LOOKUP = `${LIVE}
local now = now_ms()
local out = {}
for i = 1, #KEYS do
  local sessions = live(KEYS[i], ARGV[1], now, '')
  out[i] = #sessions == 0 and '' or cjson.encode(sessions)
end
return out
`;

const LOOKUP_BATCH = 500;

interface StoredSession {
  deviceId: string;
  instanceId: string;
  connectedAtMs: number;
  sessionId: string;
}

/**
 * RedisSessionRegistry keeps the session registry in Redis (ElastiCache), shared by every
 * gateway and messaging task of a region. A session's lifetime is its TTL, renewed by its
 * gateway's refresh; a gateway's sessions also die with its lease, so a crashed instance stops
 * receiving deliveries as soon as its lease lapses rather than when each session would expire.
 * After Redis loses its data (restart, failover), the gateways register their sessions again as
 * soon as the connection is back (onReconnect).
 */
export class RedisSessionRegistry implements SessionRegistry {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #owned: boolean;

  constructor(redis: Redis, opts: { keyPrefix: string; owned?: boolean }) {
    this.#redis = redis;
    this.#prefix = opts.keyPrefix;
    this.#owned = opts.owned ?? false;
    redis.defineCommand("chatRegister", { numberOfKeys: 1, lua: REGISTER });
    redis.defineCommand("chatUnregister", { numberOfKeys: 1, lua: UNREGISTER });
    redis.defineCommand("chatRefresh", { lua: REFRESH });
    redis.defineCommand("chatLookup", { lua: LOOKUP });
  }

  async register(session: Session, ttlMs: number) {
    const first = (await this.#call("chatRegister", [
      this.#key(session.userId),
      this.#prefix,
      session.sessionId,
      this.#json(session),
      String(Math.ceil(ttlMs)),
    ])) as number;
    return { firstOfUser: first === 1 };
  }

  async unregister(session: Session) {
    const last = (await this.#call("chatUnregister", [
      this.#key(session.userId),
      this.#prefix,
      session.sessionId,
    ])) as number;
    return { lastOfUser: last === 1 };
  }

  async refresh(instanceId: string, sessions: Session[], ttlMs: number) {
    const keys = [
      `${this.#prefix}lease:${instanceId}`,
      ...sessions.map((s) => this.#key(s.userId)),
    ];
    const args = [
      String(Math.ceil(ttlMs)),
      ...sessions.flatMap((s) => [s.sessionId, this.#json(s)]),
    ];
    await this.#call("chatRefresh", [String(keys.length), ...keys, ...args]);
  }

  async lookup(userIds: string[]) {
    const out = new Map<string, Session[]>();
    for (let i = 0; i < userIds.length; i += LOOKUP_BATCH) {
      const batch = userIds.slice(i, i + LOOKUP_BATCH);
      const keys = batch.map((u) => this.#key(u));
      const rows = (await this.#call("chatLookup", [
        String(keys.length),
        ...keys,
        this.#prefix,
      ])) as string[];
      rows.forEach((row, j) => {
        if (!row) return;
        const userId = batch[j] as string;
        const sessions = (JSON.parse(row) as StoredSession[]).map((s) => ({
          userId,
          deviceId: s.deviceId,
          sessionId: s.sessionId,
          instanceId: s.instanceId,
          connectedAtMs: s.connectedAtMs,
        }));
        out.set(userId, sessions);
      });
    }
    return out;
  }

  async setRemotePresence(
    region: string,
    entries: Array<{ userId: string; online: boolean }>,
    ttlMs: number,
  ) {
    if (entries.length === 0) return;
    const pipeline = this.#redis.pipeline();
    for (const { userId, online } of entries) {
      const key = this.#remoteKey(region, userId);
      if (online) pipeline.set(key, "1", "PX", Math.ceil(ttlMs));
      else pipeline.del(key);
    }
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  async remotePresence(userIds: string[], regions: readonly string[]) {
    const out = new Map<string, string[]>();
    const pairs = userIds.flatMap((userId) => regions.map((region) => ({ userId, region })));
    for (let i = 0; i < pairs.length; i += LOOKUP_BATCH) {
      const batch = pairs.slice(i, i + LOOKUP_BATCH);
      const values = await this.#redis.mget(
        ...batch.map((p) => this.#remoteKey(p.region, p.userId)),
      );
      values.forEach((v, j) => {
        const p = batch[j];
        if (v === null || !p) return;
        out.set(p.userId, [...(out.get(p.userId) ?? []), p.region]);
      });
    }
    return out;
  }

  onReconnect(listener: () => void): () => void {
    // ioredis says "ready" on every (re)connection: the first one is not a comeback.
    let connected = this.#redis.status === "ready";
    const onReady = () => {
      if (connected) listener();
      connected = true;
    };
    this.#redis.on("ready", onReady);
    return () => {
      this.#redis.off("ready", onReady);
    };
  }

  async close() {
    if (this.#owned) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  #remoteKey(region: string, userId: string) {
    return `${this.#prefix}remote:${region}:${userId}`;
  }

  #key(userId: string) {
    return `${this.#prefix}sessions:${userId}`;
  }

  #json(s: Session) {
    return JSON.stringify({
      deviceId: s.deviceId,
      instanceId: s.instanceId,
      connectedAtMs: s.connectedAtMs,
    });
  }

  #call(command: string, args: string[]): Promise<unknown> {
    return (this.#redis as unknown as Record<string, (...a: string[]) => Promise<unknown>>)[
      command
    ]?.(...args) as Promise<unknown>;
  }
}
