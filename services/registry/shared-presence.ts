import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Redis, Result } from "ioredis";
import { ChangeCause, ProviderChangeSchema, ProviderSchema } from "../../gen/infermesh/v1/registry_pb.js";
import type { Logger } from "../shared/logger.js";
import { connectRedis, shownRedisUrl } from "../shared/redis-connection.js";
import type { ProviderChangeEvent, ProviderTable } from "./provider-table.js";

/** DEFAULT_PRESENCE_PREFIX starts every key and the channel the replicas of one mesh share. */
export const DEFAULT_PRESENCE_PREFIX = "infermesh:presence:";
/** SWEEP_BATCH bounds the providers one sweep takes offline, so that a script never holds Redis for long. */
const SWEEP_BATCH = 1_000;
/** CONNECT_TIMEOUT_MS is how long a starting registry waits for Redis before it gives up. */
const CONNECT_TIMEOUT_MS = 10_000;
/** EXPIRED_KIND and CHANGE_KIND tell the two kinds of message on the channel apart. */
const CHANGE_KIND = "change";
const EXPIRED_KIND = "expired";

/**
 * The scripts run on Redis' clock (TIME), so that replicas on machines whose clocks disagree still agree on deadlines.
 * KEYS are always [deadlines, providers, swept]: a sorted set of online providers by the time their TTL ends, a hash of
 * each online provider's state (Provider, binary), and the time of the last sweep.
 */
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/** CHANGE: ARGV channel, message, id, state ("" when offline), ttlMs (0 keeps the deadline). */
const CHANGE_SCRIPT = `${NOW}
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  if tonumber(ARGV[5]) > 0 then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[3]) end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`;

/** TOUCH: ARGV id, ttlMs. Moves an online provider's deadline; 0 when Redis does not hold it (it lost its data). */
const TOUCH_SCRIPT = `${NOW}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1`;

/**
 * SWEEP: ARGV channel, origin, stalledAfterMs, graceMs, batch. Takes the providers whose deadline passed offline, once
 * for all replicas: the first sweep to find one removes it and publishes its expiry. When no sweep ran for a while
 * (Redis or every replica was stopped), heartbeats may have gone unrecorded: every deadline due within the grace is
 * moved to its end instead, as a single registry does when its own timers fire late.
 */
const SWEEP_SCRIPT = `${NOW}
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('SET', KEYS[3], now)
if now - last > tonumber(ARGV[3]) then
  local until_ = now + tonumber(ARGV[4])
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', until_)) do redis.call('ZADD', KEYS[1], until_, id) end
  return {}
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))
if #expired == 0 then return expired end
redis.call('ZREM', KEYS[1], unpack(expired))
redis.call('HDEL', KEYS[2], unpack(expired))
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\\n${EXPIRED_KIND}\\n' .. table.concat(expired, '\\n'))
return expired`;

/**
 * ADOPT: ARGV ttlMs, then id and state pairs. Puts back providers a replica holds online that Redis lost (a restart
 * without persistence, a missed expiry), each with a fresh TTL: a live one is touched again, a dead one expires once.
 */
const ADOPT_SCRIPT = `${NOW}
local adopted = 0
for i = 2, #ARGV, 2 do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
    redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
    adopted = adopted + 1
  end
end
return adopted`;

declare module "ioredis" {
  interface RedisCommander<Context> {
    presenceChange(
      deadlines: string,
      providers: string,
      swept: string,
      channel: string,
      message: Buffer,
      id: string,
      state: Buffer | string,
      ttlMs: number,
    ): Result<number, Context>;
    presenceTouch(deadlines: string, providers: string, swept: string, id: string, ttlMs: number): Result<number, Context>;
    presenceSweep(
      deadlines: string,
      providers: string,
      swept: string,
      channel: string,
      origin: string,
      stalledAfterMs: number,
      graceMs: number,
      batch: number,
    ): Result<string[], Context>;
    presenceAdopt(
      deadlines: string,
      providers: string,
      swept: string,
      ttlMs: number,
      ...pairs: (string | Buffer)[]
    ): Result<number, Context>;
  }
}

/** SharedPresenceOptions configure one replica's share of presence. */
export interface SharedPresenceOptions {
  /** url is the Redis (or Valkey) the replicas share. */
  readonly url: string;
  readonly table: ProviderTable;
  readonly ttlMs: number;
  readonly log: Logger;
  /** prefix starts the keys and the channel; replicas of one mesh use the same, other meshes another. */
  readonly prefix?: string;
  /** sweepIntervalMs is how often this replica looks for expired providers; a tenth of the TTL by default. */
  readonly sweepIntervalMs?: number;
  /** onError hears each failed Redis operation, by name, for the metrics. */
  readonly onError?: (operation: string) => void;
}

/**
 * SharedPresence makes the ProviderTables of several registry replicas one: each change a replica makes (a heartbeat
 * that changed something, a deregistration, an owner's decision) is written to Redis and published, every other
 * replica mirrors it into its table and so to its watchers; a steady heartbeat only moves the provider's deadline.
 * Expiry is a sweep every replica runs against the shared deadlines, which takes each provider offline exactly once.
 *
 * Redis being away never fails a heartbeat: the replica keeps serving from its table, remembers what it could not
 * write, and writes it when Redis answers again.
 */
export class SharedPresence {
  /** replicaId tells this replica's own messages apart on the shared channel. */
  readonly replicaId = randomUUID();
  readonly #options: SharedPresenceOptions;
  readonly #table: ProviderTable;
  readonly #keys: readonly [string, string, string];
  readonly #channel: string;
  readonly #sweepIntervalMs: number;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  /** #unsent holds each provider's latest change that Redis did not take, to write when it answers again. */
  readonly #unsent = new Map<string, ProviderChangeEvent>();
  /** #untouched holds providers whose heartbeat could not move their deadline. */
  readonly #untouched = new Set<string>();
  /** #buffered holds the messages that arrive while a snapshot loads; undefined when none is loading. */
  #buffered: Buffer[] | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping = false;
  #closed = false;

  constructor(options: SharedPresenceOptions) {
    this.#options = options;
    this.#table = options.table;
    const prefix = options.prefix ?? DEFAULT_PRESENCE_PREFIX;
    this.#keys = [`${prefix}deadlines`, `${prefix}providers`, `${prefix}swept`];
    this.#channel = `${prefix}changes`;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? Math.max(20, Math.min(1_000, Math.floor(options.ttlMs / 10)));
    this.#redis = connectRedis(options.url, { name: "infermesh-registry", log: options.log });
    this.#subscriber = connectRedis(options.url, { name: "infermesh-registry-watch", log: options.log });
    this.#redis.defineCommand("presenceChange", { numberOfKeys: 3, lua: CHANGE_SCRIPT });
    this.#redis.defineCommand("presenceTouch", { numberOfKeys: 3, lua: TOUCH_SCRIPT });
    this.#redis.defineCommand("presenceSweep", { numberOfKeys: 3, lua: SWEEP_SCRIPT });
    this.#redis.defineCommand("presenceAdopt", { numberOfKeys: 3, lua: ADOPT_SCRIPT });
    this.#subscriber.on("messageBuffer", (_channel: Buffer, message: Buffer) => {
      if (this.#buffered) this.#buffered.push(message);
      else this.#receive(message);
    });
  }

  /**
   * start subscribes to the replicas' changes and loads what Redis holds into the table; it rejects when Redis cannot
   * be reached in time. After a reconnection the subscription comes back by itself and the table is loaded again.
   */
  async start(): Promise<void> {
    await Promise.all([ready(this.#redis, this.#options.url), ready(this.#subscriber, this.#options.url)]);
    await this.#subscriber.subscribe(this.#channel);
    await this.#resync();
    // Messages published while the subscriber was away are lost: what Redis holds is read again when it is back.
    this.#subscriber.on("ready", () => {
      this.#resync().catch((error: unknown) => this.#failed("resync", error));
    });
    this.#sweeper = setInterval(() => void this.#sweep(), this.#sweepIntervalMs);
    this.#sweeper.unref();
  }

  /** publish shares a change this replica made; TTL expiries are the sweep's and never come here. */
  publish(event: ProviderChangeEvent): void {
    const id = event.provider.id;
    this.#unsent.delete(id);
    this.#write(event).catch((error: unknown) => {
      if (!this.#unsent.has(id)) this.#unsent.set(id, event);
      this.#failed("publish", error);
    });
  }

  /** touch moves a provider's deadline after a heartbeat that changed nothing. */
  touch(providerId: string): void {
    this.#redis.presenceTouch(...this.#keys, providerId, this.#options.ttlMs).then(
      (held) => {
        this.#untouched.delete(providerId);
        if (held === 1) return;
        // Redis lost the provider (restarted empty, or the sweep took it just now): write it back whole.
        const provider = this.#table.get(providerId);
        if (provider?.online) this.publish({ provider, cause: ChangeCause.HEARTBEAT });
      },
      (error: unknown) => {
        this.#untouched.add(providerId);
        this.#failed("touch", error);
      },
    );
  }

  /** close stops sweeping and closes both connections. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    await Promise.allSettled([this.#subscriber.quit(), this.#redis.quit()]);
    this.#subscriber.disconnect();
    this.#redis.disconnect();
  }

  #write(event: ProviderChangeEvent): Promise<number> {
    const { provider, cause } = event;
    const message = this.#message(
      CHANGE_KIND,
      Buffer.from(toBinary(ProviderChangeSchema, create(ProviderChangeSchema, { provider, cause }))),
    );
    const state = provider.online ? Buffer.from(toBinary(ProviderSchema, provider)) : "";
    const ttlMs = cause === ChangeCause.HEARTBEAT ? this.#options.ttlMs : 0;
    return this.#redis.presenceChange(...this.#keys, this.#channel, message, provider.id, state, ttlMs);
  }

  #message(kind: string, payload: Buffer): Buffer {
    return Buffer.concat([Buffer.from(`${this.replicaId}\n${kind}\n`), payload]);
  }

  /** #receive mirrors another replica's message into the table. */
  #receive(message: Buffer): void {
    const originEnd = message.indexOf(10);
    const kindEnd = message.indexOf(10, originEnd + 1);
    if (originEnd < 0 || kindEnd < 0) return;
    const origin = message.toString("utf8", 0, originEnd);
    const kind = message.toString("utf8", originEnd + 1, kindEnd);
    const payload = message.subarray(kindEnd + 1);
    // This replica's own sweep already took its expired providers offline, as it found them.
    if (origin === this.replicaId) return;
    if (kind === EXPIRED_KIND) {
      for (const id of payload.toString("utf8").split("\n")) {
        this.#table.mirror(create(ProviderSchema, { id, online: false }), ChangeCause.EXPIRED);
      }
      return;
    }
    if (kind !== CHANGE_KIND) return;
    try {
      const { provider, cause } = fromBinary(ProviderChangeSchema, payload);
      if (!provider) return;
      const held = this.#table.get(provider.id);
      if (cause === ChangeCause.DEREGISTERED && held?.online && provider.linkId !== "" && held.linkId !== provider.linkId) {
        // The agent attached again elsewhere (here) before the old link's gateway deregistered it there: the newer
        // attachment stands, and the replica that took it offline hears so again.
        this.publish({ provider: held, cause: ChangeCause.HEARTBEAT });
        return;
      }
      this.#table.mirror(provider, cause);
    } catch (error) {
      this.#failed("decode", error);
    }
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#closed) return;
    this.#sweeping = true;
    try {
      const stalledAfterMs = Math.max(3 * this.#sweepIntervalMs, 2_000);
      const expired = await this.#redis.presenceSweep(
        ...this.#keys,
        this.#channel,
        this.replicaId,
        stalledAfterMs,
        this.#options.ttlMs,
        SWEEP_BATCH,
      );
      for (const id of expired) this.#table.expire(id);
      await this.#flush();
    } catch (error) {
      this.#failed("sweep", error);
    } finally {
      this.#sweeping = false;
    }
  }

  /** #flush writes what Redis missed while it was away: changes, then deadlines. */
  async #flush(): Promise<void> {
    for (const event of [...this.#unsent.values()]) {
      await this.#write(event);
      if (this.#unsent.get(event.provider.id) === event) this.#unsent.delete(event.provider.id);
    }
    for (const id of [...this.#untouched]) this.touch(id);
  }

  /**
   * #resync loads what Redis holds: providers online there are mirrored into the table, and providers online here that
   * Redis lost are adopted back with a fresh TTL. Messages arriving meanwhile are applied after it, in order.
   */
  async #resync(): Promise<void> {
    this.#buffered ??= [];
    try {
      const [states, online] = await Promise.all([this.#redis.hgetallBuffer(this.#keys[1]), this.#redis.zrange(this.#keys[0], 0, -1)]);
      const held = new Set(online);
      for (const id of held) {
        const state = states[id];
        if (state) this.#table.mirror(fromBinary(ProviderSchema, state), ChangeCause.HEARTBEAT);
      }
      const orphans = this.#table.providers().filter((provider) => !held.has(provider.id));
      for (let start = 0; start < orphans.length; start += SWEEP_BATCH) {
        const pairs = orphans.slice(start, start + SWEEP_BATCH).flatMap((p) => [p.id, Buffer.from(toBinary(ProviderSchema, p))]);
        await this.#redis.presenceAdopt(...this.#keys, this.#options.ttlMs, ...pairs);
      }
      this.#options.log.info(
        { redis: shownRedisUrl(this.#options.url), online: held.size, adopted: orphans.length },
        "presence loaded from redis",
      );
    } finally {
      const buffered = this.#buffered;
      this.#buffered = undefined;
      for (const message of buffered) this.#receive(message);
    }
  }

  #failed(operation: string, error: unknown): void {
    if (this.#closed) return;
    this.#options.onError?.(operation);
    this.#options.log.debug({ operation, reason: error instanceof Error ? error.message : String(error) }, "presence: redis failed");
  }
}

/** ready resolves once a connection is ready for commands, or rejects after CONNECT_TIMEOUT_MS. */
function ready(redis: Redis, url: string): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      reject(new Error(`cannot reach Redis at ${shownRedisUrl(url)} within ${CONNECT_TIMEOUT_MS / 1000} s`));
    }, CONNECT_TIMEOUT_MS);
    function onReady() {
      clearTimeout(timer);
      resolve();
    }
    redis.once("ready", onReady);
  });
}
