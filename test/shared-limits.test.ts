import { expect } from "chai";
import type { Redis } from "ioredis";
import type { GatewayOptions } from "../services/gateway/gateway.js";
import { SharedStreamSlots } from "../services/gateway/shared-stream-slots.js";
import { systemClock } from "../services/shared/clock.js";
import { createLogger } from "../services/shared/logger.js";
import { connectRedis } from "../services/shared/redis-connection.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { waitFor } from "./support/wait-for.js";

// Two gateways sharing one Redis share each key's request budget and stream slots; a Redis that stalls lets requests
// through instead of holding them.

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** STALL_BOUND_MS is how long a request may take while Redis is frozen: the command timeout (1 s) and slack. */
const STALL_BOUND_MS = 2_000;

describe("limits shared through Redis", function () {
  this.timeout(30_000);
  let redis: RedisServer;
  let registry: RegistryFixture;
  let database = 0;
  /** holds are the streams a test keeps open, by the prompt that asked for them. */
  const holds = new Map<string, () => void>();

  const script: Script = async function* (call, signal) {
    const prompt = decode(call.body);
    if (!call.stream) {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "application/json" } } } };
      yield { part: { part: { case: "data", value: encode('{"choices":[]}') } } };
      return;
    }
    yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
    const hold = /hold-\d+/.exec(prompt)?.[0];
    if (hold) {
      await new Promise<void>((resolve) => {
        holds.set(hold, resolve);
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    yield { part: { part: { case: "event", value: { data: encode("[DONE]") } } } };
  };

  /** Pair is two gateways on one Redis database, with an agent for alice attached to the first. */
  interface Pair {
    readonly a: GatewayFixture;
    readonly b: GatewayFixture;
    readonly agent: ScriptedAgent;
    stop(): Promise<void>;
  }

  const startPair = async (options: Partial<GatewayOptions>): Promise<Pair> => {
    database += 1;
    const url = redis.url(database);
    const a = await startGateway(registry.address, { redis: url, ...options });
    const b = await startGateway(registry.address, { redis: url, ...options });
    const agent = await attachScriptedAgent(
      a.baseUrl,
      await registry.keyFor("alice"),
      "alice-box",
      [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }],
      script,
    );
    await waitFor(
      "both gateways to route to alice's box",
      () => a.gateway.table.provider("alice-box") && b.gateway.table.provider("alice-box"),
    );
    return {
      a,
      b,
      agent,
      async stop() {
        for (const release of holds.values()) release();
        holds.clear();
        await agent.close();
        await a.stop();
        await b.stop();
      },
    };
  };

  const chat = (gateway: GatewayFixture, key: string, prompt = "hi", stream = false) =>
    fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: prompt }], stream }),
    });

  /** held opens a stream that stays open until release(name); it resolves once the answer's head is in. */
  const held = async (gateway: GatewayFixture, key: string, name: string) => {
    const response = await chat(gateway, key, name, true);
    expect(response.status, `${name} is admitted`).to.equal(200);
    await waitFor(`${name} to reach the agent`, () => holds.has(name));
    return response;
  };
  const release = async (name: string, response: Response) => {
    holds.get(name)?.();
    holds.delete(name);
    await response.text();
  };

  /** timed is a request's answer and how long it took. */
  const timed = async (request: () => Promise<Response>) => {
    const startedAt = Date.now();
    const response = await request();
    await response.arrayBuffer();
    return { status: response.status, ms: Date.now() - startedAt };
  };

  before(async function () {
    skipWithoutRedis(this);
    redis = await startRedis();
    registry = await startRegistry();
  });

  after(async () => {
    await registry?.stop();
    await redis?.stop();
  });

  describe("requests per minute", () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair({ rateLimits: { inferencePerMinute: 3, modelsPerMinute: 0, concurrentStreams: 5 } });
    });
    after(() => pair?.stop());

    it("gives a key one budget across both gateways: the 4th request of 3 a minute gets the 429, whichever gateway takes it", async () => {
      const key = await registry.keyFor("alice");
      const first = await chat(pair.a, key);
      expect(first.status).to.equal(200);
      expect(first.headers.get("x-ratelimit-remaining")).to.equal("2");
      const second = await chat(pair.b, key);
      expect(second.status).to.equal(200);
      // Gateway B has seen one request of this key: counting alone, it would leave 2.
      expect(second.headers.get("x-ratelimit-remaining"), "B counts A's request").to.equal("1");
      expect((await chat(pair.a, key)).status).to.equal(200);
      const limited = await chat(pair.b, key);
      expect(limited.status, "B's second request is the key's fourth").to.equal(429);
      expect(Number(limited.headers.get("retry-after"))).to.be.within(1, 60);
      expect(limited.headers.get("x-ratelimit-remaining")).to.equal("0");
      const { error } = (await limited.json()) as { error: Record<string, unknown> };
      expect(error).to.deep.include({ type: "rate_limit_exceeded", param: null, code: "rate_limit_exceeded" });
      expect(error.message).to.match(/^Rate limit reached: 3 requests per minute\. Retry in \d+ (seconds?|minute)\.$/);
      expect((await chat(pair.a, key)).status, "A refuses it too").to.equal(429);
      expect((await chat(pair.b, await registry.keyFor("alice"))).status, "another key has its own budget").to.equal(200);
    });

    it("lets requests through within the command timeout while Redis is frozen, and holds the limit again once it wakes", async () => {
      const key = await registry.keyFor("alice");
      for (const gateway of [pair.a, pair.b, pair.a]) expect((await chat(gateway, key)).status).to.equal(200);
      expect((await chat(pair.b, key)).status).to.equal(429);
      redis.pause();
      try {
        const during = [];
        for (const gateway of [pair.a, pair.a, pair.b, pair.b]) during.push(await timed(() => chat(gateway, key)));
        // A stream waits on both: the request counter, then a stream slot.
        during.push(await timed(() => chat(pair.b, key, "frozen", true)));
        for (const { status, ms } of during) {
          expect(status, "fail-open: a frozen Redis refuses nothing").to.equal(200);
          expect(ms).to.be.below(STALL_BOUND_MS);
        }
        console.log(`      requests while Redis is frozen answered in ${during.map(({ ms }) => `${ms} ms`).join(", ")}`);
      } finally {
        redis.resume();
      }
      await waitFor("the shared limit to hold again", async () => (await chat(pair.b, key)).status === 429);
      expect((await chat(pair.a, key)).status).to.equal(429);
    });

    it("answers at once while Redis is down, and shares the budget again once it is back", async () => {
      const key = await registry.keyFor("alice");
      await redis.kill();
      try {
        const during = await timed(() => chat(pair.a, key));
        expect(during.status, "fail-open: a Redis that is down refuses nothing").to.equal(200);
        expect(during.ms).to.be.below(STALL_BOUND_MS);
        console.log(`      a request while Redis is down answered in ${during.ms} ms`);
      } finally {
        await redis.restart();
      }
      // Redis came back empty: the budget starts again, shared.
      await waitFor("gateway B to count in Redis again", async () => {
        const response = await chat(pair.b, key);
        await response.arrayBuffer();
        return response.headers.get("x-ratelimit-remaining") === "2";
      });
      const next = await chat(pair.a, key);
      expect(next.headers.get("x-ratelimit-remaining"), "A counts B's request").to.equal("1");
    });
  });

  describe("concurrent streams", () => {
    let pair: Pair;
    before(async () => {
      pair = await startPair({ rateLimits: { inferencePerMinute: 0, modelsPerMinute: 0, concurrentStreams: 2 } });
    });
    after(() => pair?.stop());

    it("gives a key 2 streams across both gateways: a 3rd on either gets the 429, and one ending admits another", async () => {
      const key = await registry.keyFor("alice");
      const one = await held(pair.a, key, "hold-1");
      const two = await held(pair.b, key, "hold-2");
      for (const gateway of [pair.a, pair.b]) {
        // Each gateway has one of the key's streams: counting alone, it would admit a second.
        const third = await chat(gateway, key, "third", true);
        expect(third.status, "a third stream, while each gateway holds one").to.equal(429);
        expect(third.headers.get("retry-after")).to.equal("1");
        expect(await third.json()).to.deep.equal({
          error: {
            message: "Too many concurrent streams: at most 2 per API key.",
            type: "rate_limit_exceeded",
            param: null,
            code: "concurrent_streams_exceeded",
          },
        });
      }
      expect((await chat(pair.b, await registry.keyFor("alice"), "other key", true)).status, "another key has its own slots").to.equal(200);
      await release("hold-1", one);
      // The slot goes back as the stream ends, asynchronously: wait for it rather than race it.
      const three = await waitFor("a stream after one ended", async () => {
        const response = await chat(pair.b, key, "hold-3", true);
        if (response.status === 200) return response;
        await response.arrayBuffer();
        return undefined;
      });
      await waitFor("hold-3 to reach the agent", () => holds.has("hold-3"));
      expect((await chat(pair.a, key, "fourth", true)).status, "the freed slot is taken again").to.equal(429);
      await release("hold-2", two);
      await release("hold-3", three);
    });

    it("lets streams through while Redis is frozen, and bounds them again once it wakes", async () => {
      const key = await registry.keyFor("alice");
      redis.pause();
      let during: { status: number; ms: number };
      try {
        during = await timed(() => chat(pair.b, key, "frozen", true));
      } finally {
        redis.resume();
      }
      expect(during.status, "fail-open: a frozen Redis refuses no stream").to.equal(200);
      expect(during.ms).to.be.below(STALL_BOUND_MS);
      const fallbacks = await pair.b.gateway.metrics.streamSlotFallbacks.get();
      expect(fallbacks.values[0]?.value, "counted in infermesh_gateway_stream_slot_fallbacks_total").to.equal(1);
      console.log(`      a stream while Redis is frozen answered in ${during.ms} ms`);
      const one = await held(pair.a, key, "hold-4");
      const two = await held(pair.b, key, "hold-5");
      expect((await chat(pair.b, key, "third", true)).status).to.equal(429);
      await release("hold-4", one);
      await release("hold-5", two);
    });

    it("keeps the slots of streams that outlast their lease, renewing them, and frees them as the streams end", async () => {
      const leaseMs = 600;
      const log = createLogger("test", "silent");
      const connections = [0, 1].map((n) => connectRedis(redis.url(database), { name: `slots-${n}`, log }));
      try {
        await waitFor("both connections", () => connections.every((connection) => connection.status === "ready"));
        const [holder, other] = connections.map(
          (connection) => new SharedStreamSlots({ redis: connection, max: 2, clock: systemClock, log, leaseMs }),
        );
        if (!holder || !other) throw new Error("two pools");
        const releases = [await holder.take("renewed-key"), await holder.take("renewed-key")];
        const until = Date.now() + 3 * leaseMs;
        while (Date.now() < until) {
          const refused = await Promise.resolve(other.take("renewed-key")).then(
            (release) => {
              release();
              return undefined;
            },
            (error: unknown) => error,
          );
          expect(refused, "the held slots are still taken").to.have.nested.property("detail.code", "concurrent_streams_exceeded");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        for (const release of releases) release();
        const again = await waitFor("a slot after the streams ended", () => other.take("renewed-key").catch(() => undefined), 2_000, 20);
        again();
        holder.close();
        other.close();
      } finally {
        for (const connection of connections) connection.disconnect();
      }
    });

    it("frees the slots of a gateway that died holding them once their lease lapses", async () => {
      const key = await registry.keyFor("alice");
      const { keyId } = (await waitFor("the key's principal", async () => {
        const principal = await pair.a.gateway.registryLink.authenticate(key);
        return principal;
      })) as { keyId: string };
      const leaseMs = 1_500;
      const connection: Redis = connectRedis(redis.url(database), { name: "doomed-gateway", log: createLogger("test", "silent") });
      await waitFor("the doomed gateway's redis", () => connection.status === "ready");
      const doomed = new SharedStreamSlots({ redis: connection, max: 2, clock: systemClock, log: createLogger("test", "silent"), leaseMs });
      await doomed.take(keyId);
      await doomed.take(keyId);
      // The process dies: no release, no renewal.
      doomed.close();
      connection.disconnect();
      const diedAt = Date.now();
      expect((await chat(pair.b, key, "while the dead hold them", true)).status).to.equal(429);
      await waitFor(
        "the dead gateway's leases to lapse",
        async () => {
          const response = await chat(pair.b, key, "after", true);
          await response.arrayBuffer();
          return response.status === 200;
        },
        leaseMs + 3_000,
        50,
      );
      const freedMs = Date.now() - diedAt;
      console.log(`      a dead gateway's slots came free after ${freedMs} ms (lease ${leaseMs} ms)`);
      expect(freedMs).to.be.within(leaseMs - 500, leaseMs + 1_000);
    });
  });
});
