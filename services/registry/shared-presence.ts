import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Redis, Result } from "ioredis";
import { ChangeCause, type Provider, ProviderSchema } from "../../gen/infermesh/v1/registry_pb.js";
import type { Logger } from "../shared/logger.js";
import { connectRedis, shownRedisUrl } from "../shared/redis-connection.js";
import { olderLink, type ProviderChangeEvent, type ProviderTable } from "./provider-table.js";

/** DEFAULT_PRESENCE_PREFIX starts every key and the channel the replicas of one mesh share. */
export const DEFAULT_PRESENCE_PREFIX = "infermesh:presence:";
/** SWEEP_BATCH bounds the providers one sweep takes offline, so that a script never holds Redis for long. */
const SWEEP_BATCH = 1_000;
/** CONNECT_TIMEOUT_MS is how long a starting registry waits for Redis before it gives up. */
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * CHANGES_KIND and EXPIRED_KIND tell the two kinds of message on the channel apart. A changes message carries, for each
 * change, its cause (one byte), the length of the provider (four bytes, big-endian) and the provider (binary); an
 * expired message the ids, one per line.
 */
const CHANGES_KIND = "changes";
const EXPIRED_KIND = "expired";
const CHANGE_HEADER_BYTES = 5;

/**
 * The scripts run on Redis' clock (TIME), so that replicas on machines whose clocks disagree still agree on deadlines.
 * KEYS are always [deadlines, providers, swept]: a sorted set of online providers by the time their TTL ends, a hash of
 * each online provider's state (Provider, binary), and the time of the last sweep.
 */
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

/**
 * CHANGES: ARGV channel, message, then for each change its id, state ("" when offline) and ttlMs (0 keeps the
 * deadline). Stores one turn's changes and publishes them as one message.
 */
const CHANGES_SCRIPT = `${NOW}
for i = 3, #ARGV, 3 do
  if ARGV[i + 1] == '' then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    local ttl = tonumber(ARGV[i + 2])
    if ttl > 0 then redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) end
  end
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`;

/**
 * TOUCH: ARGV ttlMs, then ids. Moves the deadlines of online providers; returns the ids Redis does not hold (it lost
 * its data, or the sweep took them just now).
 */
const TOUCH_SCRIPT = `${NOW}
local deadline = now + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then redis.call('ZADD', KEYS[1], deadline, ARGV[i]) else lost[#lost + 1] = ARGV[i] end
end
return lost`;

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
    presenceChanges(
      deadlines: string,
      providers: string,
      swept: string,
      channel: string,
      message: Buffer,
      ...changes: (string | Buffer | number)[]
    ): Result<number, Context>;
    presenceTouch(deadlines: string, providers: string, swept: string, ttlMs: number, ...ids: string[]): Result<string[], Context>;
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
  /** #changes and #touches are what this turn of the event loop has for Redis, sent together at its end. */
  readonly #changes = new Map<string, ProviderChangeEvent>();
  readonly #touches = new Set<string>();
  #scheduled = false;
  /** #buffered holds the messages that arrive while a snapshot loads; undefined when none is loading. */
  #buffered: Buffer[] | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping = false;
  #resyncWanted = false;
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
    this.#redis.defineCommand("presenceChanges", { numberOfKeys: 3, lua: CHANGES_SCRIPT });
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
    // The sweep does it, on the connection for commands, which may come back later than the subscriber's.
    this.#subscriber.on("ready", () => {
      this.#resyncWanted = true;
    });
    this.#sweeper = setInterval(() => void this.#sweep(), this.#sweepIntervalMs);
    this.#sweeper.unref();
  }

  /**
   * publish shares a change this replica made; TTL expiries are the sweep's and never come here. One turn's changes go
   * to Redis together, as one script call and one message.
   */
  publish(event: ProviderChangeEvent): void {
    this.#unsent.delete(event.provider.id);
    this.#changes.set(event.provider.id, event);
    this.#schedule();
  }

  /** touch moves a provider's deadline after a heartbeat that changed nothing; batched as publish is. */
  touch(providerId: string): void {
    this.#touches.add(providerId);
    this.#schedule();
  }

  /** close stops sweeping and closes both connections. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    await Promise.allSettled([this.#subscriber.quit(), this.#redis.quit()]);
    this.#subscriber.disconnect();
    this.#redis.disconnect();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#sendChanges();
      this.#sendTouches();
    });
  }

  #sendChanges(): void {
    if (this.#changes.size === 0) return;
    const events = [...this.#changes.values()];
    this.#changes.clear();
    this.#write(events).catch((error: unknown) => {
      for (const event of events) if (!this.#unsent.has(event.provider.id)) this.#unsent.set(event.provider.id, event);
      this.#failed("publish", error);
    });
  }

  #sendTouches(): void {
    if (this.#touches.size === 0) return;
    const ids = [...this.#touches];
    this.#touches.clear();
    this.#redis.presenceTouch(...this.#keys, this.#options.ttlMs, ...ids).then(
      (lost) => {
        for (const id of ids) this.#untouched.delete(id);
        // Redis lost these (restarted empty, or the sweep took them just now): write them back whole.
        for (const id of lost) {
          const provider = this.#table.get(id);
          if (provider?.online) this.publish({ provider, cause: ChangeCause.HEARTBEAT });
        }
      },
      (error: unknown) => {
        for (const id of ids) this.#untouched.add(id);
        this.#failed("touch", error);
      },
    );
  }

  /** #write stores changes and publishes them, each provider encoded once for both. */
  #write(events: readonly ProviderChangeEvent[]): Promise<number> {
    const { message, encoded } = encodeChanges(this.replicaId, events);
    const args = events.flatMap(({ provider, cause }, i) => [
      provider.id,
      provider.online ? (encoded[i] as Buffer) : "",
      cause === ChangeCause.HEARTBEAT ? this.#options.ttlMs : 0,
    ]);
    return this.#redis.presenceChanges(...this.#keys, this.#channel, message, ...args);
  }

  /** #receive mirrors another replica's message into the table. */
  #receive(message: Buffer): void {
    let decoded: PresenceMessage | undefined;
    try {
      decoded = decodePresenceMessage(message);
    } catch (error) {
      this.#failed("decode", error);
      return;
    }
    // This replica's own sweep already took its expired providers offline, as it found them.
    if (!decoded || decoded.origin === this.replicaId) return;
    if (decoded.kind === "expired") {
      for (const id of decoded.ids) this.#table.mirror(create(ProviderSchema, { id, online: false }), ChangeCause.EXPIRED);
    } else {
      for (const { provider, cause } of decoded.changes) this.#mirror(provider, cause);
    }
  }

  #mirror(provider: Provider, cause: ChangeCause): void {
    const held = this.#table.get(provider.id);
    if (cause === ChangeCause.DEREGISTERED && held?.online && provider.linkId !== "" && held.linkId !== provider.linkId) {
      // The agent attached again elsewhere (here) before the old link's gateway deregistered it there: the newer
      // attachment stands, and the replica that took it offline hears so again.
      this.publish({ provider: held, cause: ChangeCause.HEARTBEAT });
      return;
    }
    if (held?.online && provider.online) {
      // An owner's decision changes only what the owner decides; a heartbeat older than what this replica holds (two
      // replicas' changes can reach Redis in either order) changes nothing.
      if (cause === ChangeCause.OWNER) {
        this.#table.mirror(create(ProviderSchema, { ...held, paused: provider.paused, sharing: provider.sharing }), cause);
        return;
      }
      if (olderThan(provider, held)) return;
    }
    this.#table.mirror(provider, cause);
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping || this.#closed) return;
    this.#sweeping = true;
    try {
      if (this.#resyncWanted) {
        await this.#resync();
        this.#resyncWanted = false;
      }
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
      this.#requeueUnsent();
    } catch (error) {
      this.#failed("sweep", error);
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * #requeueUnsent sends what Redis missed while it was away, once a sweep shows it answers again: the changes and
   * deadlines go out with this turn's, and back to wait if they fail again.
   */
  #requeueUnsent(): void {
    if (this.#unsent.size > 0) {
      // A change published since it failed took its place there: what is left is each provider's latest.
      for (const [id, event] of this.#unsent) this.#changes.set(id, event);
      this.#unsent.clear();
      this.#schedule();
    }
    for (const id of this.#untouched) this.touch(id);
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

/**
 * olderThan tells a provider's state that an older heartbeat made than the one it is compared with: by its agent
 * process's link number when both came from one process (robust whatever the replicas' clocks say), else by the
 * heartbeats' times.
 */
function olderThan(incoming: Provider, held: Provider): boolean {
  if (olderLink(incoming, held)) return true;
  if (olderLink(held, incoming)) return false;
  const at = (provider: Provider) => (provider.lastHeartbeatTime ? timestampMs(provider.lastHeartbeatTime) : 0);
  return at(incoming) < at(held);
}

/** PresenceMessage is one message on the replicas' channel: changes a replica made, or expiries its sweep found. */
export type PresenceMessage =
  | { readonly origin: string; readonly kind: "changes"; readonly changes: readonly ProviderChangeEvent[] }
  | { readonly origin: string; readonly kind: "expired"; readonly ids: readonly string[] };

/** encodeChanges is the message announcing changes, and each provider's encoding, which Redis stores as its state. */
export function encodeChanges(origin: string, events: readonly ProviderChangeEvent[]): { message: Buffer; encoded: Buffer[] } {
  const parts: Buffer[] = [Buffer.from(`${origin}\n${CHANGES_KIND}\n`)];
  const encoded: Buffer[] = [];
  for (const { provider, cause } of events) {
    const bytes = Buffer.from(toBinary(ProviderSchema, provider));
    const header = Buffer.allocUnsafe(CHANGE_HEADER_BYTES);
    header.writeUInt8(cause, 0);
    header.writeUInt32BE(bytes.length, 1);
    parts.push(header, bytes);
    encoded.push(bytes);
  }
  return { message: Buffer.concat(parts), encoded };
}

/** decodePresenceMessage reads a message of the channel; undefined for a kind it does not know. Throws on bad bytes. */
export function decodePresenceMessage(message: Buffer): PresenceMessage | undefined {
  const originEnd = message.indexOf(10);
  const kindEnd = message.indexOf(10, originEnd + 1);
  if (originEnd < 0 || kindEnd < 0) return undefined;
  const origin = message.toString("utf8", 0, originEnd);
  const kind = message.toString("utf8", originEnd + 1, kindEnd);
  const payload = message.subarray(kindEnd + 1);
  if (kind === EXPIRED_KIND) return { origin, kind: "expired", ids: payload.toString("utf8").split("\n") };
  if (kind !== CHANGES_KIND) return undefined;
  const changes: ProviderChangeEvent[] = [];
  for (let at = 0; at + CHANGE_HEADER_BYTES <= payload.length; ) {
    const cause = payload.readUInt8(at) as ChangeCause;
    const end = at + CHANGE_HEADER_BYTES + payload.readUInt32BE(at + 1);
    if (end > payload.length) throw new Error("a change runs past the end of its message");
    changes.push({ provider: fromBinary(ProviderSchema, payload.subarray(at + CHANGE_HEADER_BYTES, end)), cause });
    at = end;
  }
  return { origin, kind: "changes", changes };
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
