import { Redis } from "ioredis";
import type { Logger } from "./logger.js";

/**
 * REDIS_COMMAND_TIMEOUT_MS bounds every command: a stalled Redis (a stopped process, a cut network) must fail calls
 * quickly, so that what depends on it can fall back instead of hanging.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
const RECONNECT_MAX_MS = 1_000;

/** RedisConnectionOptions name a connection for Redis' CLIENT LIST and the logs. */
export interface RedisConnectionOptions {
  readonly name: string;
  readonly log: Logger;
  readonly commandTimeoutMs?: number;
}

/**
 * connectRedis opens a connection that reconnects by itself forever, fails each command within a bound rather than
 * queueing it while Redis is away, and logs its ups and downs once each.
 */
export function connectRedis(url: string, options: RedisConnectionOptions): Redis {
  const redis = new Redis(url, {
    connectionName: options.name,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: (attempt) => Math.min(attempt * 100, RECONNECT_MAX_MS),
  });
  let up = false;
  redis.on("ready", () => {
    up = true;
    options.log.info({ redis: shownRedisUrl(url), connection: options.name }, "redis connected");
  });
  redis.on("error", (error: Error) => {
    if (!up) return;
    up = false;
    options.log.warn({ redis: shownRedisUrl(url), connection: options.name, reason: error.message }, "redis connection lost");
  });
  return redis;
}

/** shownRedisUrl is a Redis URL fit for logs: its password is masked. */
export function shownRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable redis URL)";
  }
}
