import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "../../logger.ts";

/** RedisConfig says how to reach the region's Redis (ElastiCache, cluster mode disabled). */
export interface RedisConfig {
  /** url is redis://host:port, or rediss:// for TLS (ElastiCache in-transit encryption). */
  url: string;
  /** password is the AUTH token, when the URL does not carry one. */
  password?: string;
  /** keyPrefix separates this deployment's keys from anything else in the same Redis. */
  keyPrefix: string;
}

/**
 * connectRedis opens a connection that reconnects by itself with capped backoff and fails
 * commands quickly while Redis is away (instead of queueing them without bound), so callers
 * see errors they can handle and retry.
 */
export function connectRedis(config: RedisConfig, log?: Logger, extra: RedisOptions = {}): Redis {
  const redis = new Redis(config.url, {
    password: config.password || undefined,
    maxRetriesPerRequest: 2,
    connectTimeout: 5_000,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...extra,
  });
  // Connection errors are retried by the client; they only need to be visible in the logs.
  let lastError = "";
  redis.on("error", (err: Error) => {
    if (err.message === lastError) return;
    lastError = err.message;
    log?.warn({ err: err.message }, "redis connection error");
  });
  redis.on("ready", () => {
    if (lastError) log?.info("redis connection restored");
    lastError = "";
  });
  return redis;
}
