import { randomUUID } from "node:crypto";
import type { Redis, Result } from "ioredis";
import type { Clock, TimerHandle } from "../shared/clock.js";
import { every } from "../shared/clock.js";
import type { Logger } from "../shared/logger.js";
import { type StreamSlotPool, StreamSlots, tooManyStreams } from "./rate-limits.js";

declare module "ioredis" {
  interface RedisCommander<Context> {
    takeStreamSlot(key: string, member: string, max: number, leaseMs: number): Result<number, Context>;
    renewStreamSlots(key: string, leaseMs: number, ...members: string[]): Result<number, Context>;
  }
}

/** STREAM_SLOT_NAMESPACE prefixes the per-key sorted sets of stream slot leases in Redis. */
export const STREAM_SLOT_NAMESPACE = "infermesh-streams:";
/**
 * DEFAULT_STREAM_LEASE_MS is how long a slot stays taken without its gateway renewing it: the slots of a gateway that
 * died with streams open come free within it.
 */
export const DEFAULT_STREAM_LEASE_MS = 30_000;
/**
 * DEFAULT_SLOT_WAIT_MS bounds the wait for a slot, half the connection's command timeout: a stream request also waits
 * on the request counter, and both together should stay within the ~1.5 s a stalled Redis may cost. A take that
 * answers too late admits one stream unchecked; its lease, if it was written, goes back with the stream.
 */
export const DEFAULT_SLOT_WAIT_MS = 500;

// Both scripts read Redis' clock, so that the gateways' own clocks need not agree. A slot is a member of the key's
// sorted set scored by its lease's expiry; expired leases are swept before counting.
const TAKE_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease)
return 1
`;

// A stream still open is counted again even if its lease lapsed while Redis was away: it does hold a connection.
const RENEW_SCRIPT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
return #ARGV - 1
`;

/** SharedStreamSlotsOptions configure SharedStreamSlots. */
export interface SharedStreamSlotsOptions {
  readonly redis: Redis;
  /** max bounds each key's streams across every gateway sharing the Redis; 0 is off. */
  readonly max: number;
  readonly clock: Clock;
  readonly log: Logger;
  /** leaseMs is how long a slot lasts unless renewed; it is renewed every third of it. */
  readonly leaseMs?: number;
  /** waitMs bounds the wait for Redis to hand out a slot, queueing included; past it the stream goes ahead. */
  readonly waitMs?: number;
  readonly namespace?: string;
  /** onFallback is told each time a slot is counted on this gateway alone because Redis did not answer. */
  readonly onFallback?: () => void;
}

/**
 * SharedStreamSlots bounds each key's streams across the gateways that share one Redis. A slot is a lease in Redis,
 * taken and swept by one script so two gateways cannot both take the last one, renewed while the stream lasts and
 * given back when it ends. When Redis cannot answer, the stream is let through (fail-open) and counted on this
 * gateway only, whose own count still holds the key to the bound.
 */
export class SharedStreamSlots implements StreamSlotPool {
  readonly #options: SharedStreamSlotsOptions;
  readonly #leaseMs: number;
  readonly #namespace: string;
  readonly #local: StreamSlots;
  /** #held maps each lease this gateway holds in Redis to its key. */
  readonly #held = new Map<string, string>();
  readonly #memberPrefix = `${randomUUID()}:`;
  readonly #renewal: TimerHandle;
  #taken = 0;
  #failing = false;

  constructor(options: SharedStreamSlotsOptions) {
    this.#options = options;
    this.#leaseMs = options.leaseMs ?? DEFAULT_STREAM_LEASE_MS;
    this.#namespace = options.namespace ?? STREAM_SLOT_NAMESPACE;
    this.#local = new StreamSlots(options.max);
    options.redis.defineCommand("takeStreamSlot", { numberOfKeys: 1, lua: TAKE_SCRIPT });
    options.redis.defineCommand("renewStreamSlots", { numberOfKeys: 1, lua: RENEW_SCRIPT });
    this.#renewal = every(options.clock, Math.max(1, Math.floor(this.#leaseMs / 3)), () => void this.#renew());
  }

  /** take reserves a slot for the key on every gateway, or throws the 429; the returned function gives it back. */
  async take(keyId: string): Promise<() => void> {
    const { max, redis } = this.#options;
    const releaseLocal = this.#local.take(keyId);
    if (max === 0) return releaseLocal;
    const key = this.#namespace + keyId;
    const member = `${this.#memberPrefix}${++this.#taken}`;
    let taken: number;
    try {
      taken = await this.#bounded(redis.takeStreamSlot(key, member, max, this.#leaseMs));
    } catch (error) {
      this.#failed(error);
      // The command may still run once a stalled Redis wakes up: give that lease back too when the stream ends.
      this.#options.onFallback?.();
      return () => {
        releaseLocal();
        this.#giveBack(key, member);
      };
    }
    this.#recovered();
    if (taken !== 1) {
      releaseLocal();
      throw tooManyStreams(max);
    }
    this.#held.set(member, key);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      releaseLocal();
      this.#held.delete(member);
      this.#giveBack(key, member);
    };
  }

  /** close stops renewing; the connection is its owner's to close. */
  close(): void {
    this.#renewal.cancel();
  }

  /**
   * #bounded bounds a command's wait: the connection's command timeout starts only once a command is written, and
   * commands queue behind a batch that a stalled Redis is not answering.
   */
  #bounded<T>(command: Promise<T>): Promise<T> {
    const waitMs = this.#options.waitMs ?? DEFAULT_SLOT_WAIT_MS;
    return new Promise<T>((resolve, reject) => {
      const timer = this.#options.clock.setTimer(() => reject(new Error(`redis did not answer within ${waitMs} ms`)), waitMs);
      command.then(
        (value) => {
          timer.cancel();
          resolve(value);
        },
        (error: unknown) => {
          timer.cancel();
          reject(error);
        },
      );
    });
  }

  #giveBack(key: string, member: string): void {
    // An unanswered release lets the lease lapse by itself.
    this.#options.redis.zrem(key, member).catch(() => {});
  }

  async #renew(): Promise<void> {
    if (this.#held.size === 0) return;
    const byKey = new Map<string, string[]>();
    for (const [member, key] of this.#held) byKey.set(key, [...(byKey.get(key) ?? []), member]);
    try {
      await Promise.all([...byKey].map(([key, members]) => this.#options.redis.renewStreamSlots(key, this.#leaseMs, ...members)));
      this.#recovered();
    } catch (error) {
      this.#failed(error);
    }
  }

  #failed(error: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    const reason = error instanceof Error ? error.message : String(error);
    this.#options.log.warn({ reason }, "stream slots counted on this gateway alone: redis does not answer");
  }

  #recovered(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#options.log.info("stream slots shared through redis again");
  }
}
