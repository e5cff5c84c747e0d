import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { Redis } from "ioredis";
import { ModelSchema, ServiceType } from "../gen/infermesh/v1/capabilities_pb.js";
import { ChangeCause, type Provider, ProviderSchema } from "../gen/infermesh/v1/registry_pb.js";
import { createRegistry, type Registry, type RegistryOptions } from "../services/registry/registry.js";
import { decodePresenceMessage, encodeChanges } from "../services/registry/shared-presence.js";
import type { RegistryStore } from "../services/registry/store/registry-store.js";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { createRegistryClient, type RegistryClient } from "../services/shared/grpc/registry-client.js";
import { AGENT_KEY_METADATA } from "../services/shared/heartbeat-relay.js";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis-fixture.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { waitFor } from "./support/wait-for.js";

const KEEPALIVE = { pingIntervalMs: 10_000, pingTimeoutMs: 5_000 };
const MESH = { authorization: `Bearer ${MESH_TOKEN}` };

/** Replica is one registry replica under test, with a client of it. */
interface Replica {
  readonly registry: Registry;
  readonly client: RegistryClient;
  readonly url: string;
}

/** Seen is what one watcher of one replica heard, in order: online ids after each change, and each change. */
interface Seen {
  readonly changes: { readonly provider: Provider; readonly cause: ChangeCause; readonly atMs: number }[];
  readonly online: Set<string>;
  readonly stop: () => void;
}

describe("registry replicas sharing presence through Redis", function () {
  this.timeout(60_000);
  let redis: RedisServer;
  let dir: string;
  let store: RegistryStore;
  let ownerKey: string;
  let prefix: string;
  const open: Replica[] = [];
  const watches: Seen[] = [];

  before(async function () {
    skipWithoutRedis(this);
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), "infermesh-presence-"));
    store = createSqliteStore({ path: join(dir, "infermesh.db") });
    ownerKey = (await store.createApiKey("ada")).apiKey;
  });

  beforeEach(() => {
    // Each test is a mesh of its own on the one Redis.
    prefix = `test-${randomBytes(4).toString("hex")}:`;
  });

  afterEach(async () => {
    for (const watch of watches.splice(0)) watch.stop();
    await Promise.all(open.splice(0).map((replica) => stopReplica(replica)));
  });

  after(async () => {
    await store?.close();
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function startReplica(options: Partial<RegistryOptions> = {}): Promise<Replica> {
    const registry = createRegistry({
      store,
      meshToken: MESH_TOKEN,
      listen: { host: "127.0.0.1", port: 0 },
      shutdownGraceMs: 0,
      heartbeatIntervalMs: 100,
      ttlMs: 600,
      redis: redis.url(),
      redisPrefix: prefix,
      ...options,
    });
    const { grpc } = await registry.listen();
    const url = `http://127.0.0.1:${grpc.port}`;
    const replica = { registry, client: createRegistryClient(url, KEEPALIVE), url };
    open.push(replica);
    return replica;
  }

  async function stopReplica(replica: Replica): Promise<void> {
    replica.client.close();
    await replica.registry.close();
  }

  function watch(replica: Replica): Seen {
    const controller = new AbortController();
    const seen: Seen = { changes: [], online: new Set(), stop: () => controller.abort() };
    void (async () => {
      try {
        for await (const response of replica.client.client.watchProviders({}, { headers: MESH, signal: controller.signal })) {
          const { event } = response;
          if (event.case === "snapshot") for (const provider of event.value.providers) seen.online.add(provider.id);
          if (event.case === "change" && event.value.provider) {
            const { provider, cause } = event.value;
            seen.changes.push({ provider, cause, atMs: performance.now() });
            if (provider.online) seen.online.add(provider.id);
            else seen.online.delete(provider.id);
          }
        }
      } catch {
        // The replica stopped, or the test ended the watch.
      }
    })();
    watches.push(seen);
    return seen;
  }

  function heartbeat(replica: Replica, providerId: string, model = "m", inFlight = 0) {
    return replica.client.client.heartbeat(
      { providerId, models: [{ id: model, serviceType: ServiceType.LLM }], load: { inFlight } },
      { headers: { authorization: `Bearer ${ownerKey}` } },
    );
  }

  const offlineChanges = (seen: Seen, id: string) => seen.changes.filter((c) => c.provider.id === id && !c.provider.online);
  const expiries = async (replica: Replica) =>
    (await replica.registry.metrics.expiries.get()).values.reduce((sum, { value }) => sum + value, 0);

  it("shows a heartbeat to one replica to the watchers of every replica within 100 ms", async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    const onA = watch(a);
    const onB = watch(b);
    await heartbeat(a, "box");
    await waitFor("both replicas' watchers to see box online", () => onA.online.has("box") && onB.online.has("box"));
    const delaysMs: number[] = [];
    for (let round = 1; round <= 30; round++) {
      const before = onB.changes.length;
      const sentAtMs = performance.now();
      // A different model each round is a change every watcher must hear of.
      await heartbeat(round % 2 === 0 ? a : b, "box", `m-${round}`);
      const change = await waitFor(`round ${round} on replica b`, () =>
        onB.changes.slice(before).find((c) => c.provider.models[0]?.id === `m-${round}`),
      );
      delaysMs.push(change.atMs - sentAtMs);
    }
    await waitFor("replica a's watcher to see the last model", () => onA.changes.at(-1)?.provider.models[0]?.id === "m-30");
    delaysMs.sort((x, y) => x - y);
    const p50 = delaysMs[Math.floor(delaysMs.length / 2)] ?? Number.NaN;
    const worst = delaysMs.at(-1) ?? Number.NaN;
    console.log(`      heartbeat to a watcher on either replica: p50 ${p50.toFixed(1)} ms, max ${worst.toFixed(1)} ms`);
    expect(worst).to.be.below(100);
  });

  it("keeps a provider online on every replica while its heartbeats go to any of them, telling watchers nothing", async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    const onA = watch(a);
    const onB = watch(b);
    await heartbeat(a, "box");
    await waitFor("box online on both", () => onA.online.has("box") && onB.online.has("box"));
    const changesBefore = [onA.changes.length, onB.changes.length];
    // Steady heartbeats alternate between the replicas for five TTLs; each alone would let box expire on the other.
    const until = Date.now() + 3_000;
    for (let n = 0; Date.now() < until; n++) {
      await heartbeat(n % 2 === 0 ? b : a, "box");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(offlineChanges(onA, "box")).to.deep.equal([]);
    expect(offlineChanges(onB, "box")).to.deep.equal([]);
    expect([onA.changes.length, onB.changes.length]).to.deep.equal(changesBefore);
  });

  it("takes a silent provider offline once: one expiry for all replicas, seen once by each replica's watchers", async () => {
    const replicas = [await startReplica(), await startReplica(), await startReplica()];
    const seen = replicas.map((replica) => watch(replica));
    await heartbeat(replicas[0] as Replica, "box");
    await waitFor("box online everywhere", () => seen.every((s) => s.online.has("box")));
    await waitFor("box offline everywhere", () => seen.every((s) => !s.online.has("box")), 5_000);
    // Let every replica sweep a few more times before counting.
    const probe = new Redis(redis.url());
    try {
      const sweptAt = Number(await probe.get(`${prefix}swept`));
      await waitFor("three more sweeps", async () => Number(await probe.get(`${prefix}swept`)) > sweptAt + 200, 5_000);
    } finally {
      probe.disconnect();
    }
    for (const s of seen) {
      expect(offlineChanges(s, "box").map((c) => c.cause)).to.deep.equal([ChangeCause.EXPIRED]);
    }
    const counts = await Promise.all(replicas.map(expiries));
    expect(counts.reduce((sum, n) => sum + n, 0)).to.equal(1);
  });

  it("moves watchers off a dead replica with nothing going offline, and a new replica starts from what Redis holds", async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    const onB = watch(b);
    await heartbeat(a, "box");
    await heartbeat(a, "other");
    await waitFor("both providers on b", () => onB.online.has("box") && onB.online.has("other"));
    await stopReplica(a);
    open.splice(open.indexOf(a), 1);
    // The providers' agents now heartbeat through b, as gateways move there.
    const until = Date.now() + 1_500;
    while (Date.now() < until) {
      await Promise.all([heartbeat(b, "box"), heartbeat(b, "other")]);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const c = await startReplica();
    const listed = await c.client.client.listProviders({}, { headers: MESH });
    expect(listed.providers.map((p) => p.id)).to.deep.equal(["box", "other"]);
    expect(offlineChanges(onB, "box")).to.deep.equal([]);
    expect(offlineChanges(onB, "other")).to.deep.equal([]);
  });

  it("shows an owner's pause made on one replica on the others, and a heartbeat to another replica keeps it", async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    const onB = watch(b);
    await heartbeat(a, "box");
    await waitFor("box on b", () => onB.online.has("box"));
    const owner = await store.authenticate(ownerKey);
    await a.client.accounts.setProviderPaused({ userId: owner?.userId ?? "", providerId: "box", paused: true }, { headers: MESH });
    await waitFor("b's watcher to see box paused", () => onB.changes.at(-1)?.provider.paused === true);
    await heartbeat(b, "box");
    await heartbeat(b, "box", "m", 5);
    await waitFor("b's watcher to see the new load", () => onB.changes.at(-1)?.provider.load?.inFlight === 5);
    expect(onB.changes.at(-1)?.provider.paused).to.equal(true);
  });

  it("keeps an agent that attached again elsewhere online when its old link's deregistration arrives late", async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    const onA = watch(a);
    const relay = (linkId: string) => ({ ...MESH, [AGENT_KEY_METADATA]: ownerKey, "x-link": linkId });
    const attached = (linkId: string) => ({
      providerId: "box",
      endpoint: "127.0.0.1:9",
      gatewayId: `gateway-${linkId}`,
      linkId,
      models: [{ id: "m", serviceType: ServiceType.LLM }],
    });
    await a.client.client.heartbeat(attached("link-1"), { headers: relay("link-1") });
    await b.client.client.heartbeat(attached("link-2"), { headers: relay("link-2") });
    await waitFor("a to learn of the new link", () => onA.changes.at(-1)?.provider.linkId === "link-2");
    // Replica a deregisters the old link as if it had not yet heard of the new one: the message b gets says link-1.
    const stale = { provider: create(ProviderSchema, { id: "box", online: false, linkId: "link-1" }), cause: ChangeCause.DEREGISTERED };
    const listener = new Redis(redis.url());
    const heard: Provider[] = [];
    listener.on("messageBuffer", (_channel: Buffer, message: Buffer) => {
      const decoded = decodePresenceMessage(message);
      if (decoded?.kind === "changes") heard.push(...decoded.changes.map((change) => change.provider));
    });
    const publisher = new Redis(redis.url());
    try {
      await listener.subscribe(`${prefix}changes`);
      await publisher.publish(`${prefix}changes`, encodeChanges("another-replica", [stale]).message);
      // b answers the stale deregistration with its own, newer state, which brings box back wherever it went offline.
      await waitFor("b to announce box on link-2 again", () => heard.some((p) => p.online && p.linkId === "link-2"));
    } finally {
      publisher.disconnect();
      listener.disconnect();
    }
    expect(b.registry.table.get("box")).to.include({ online: true, linkId: "link-2" });
  });

  it("refuses a heartbeat from an agent's older link, read late on any replica, so it cannot move the provider back", async () => {
    const [a, b] = [await startReplica(), await startReplica()];
    const onA = watch(a);
    const headers = { ...MESH, [AGENT_KEY_METADATA]: ownerKey };
    const onLink = (linkSequence: number) => ({
      providerId: "box",
      endpoint: `127.0.0.1:${9000 + linkSequence}`,
      gatewayId: `gateway-${linkSequence}`,
      linkId: `link-${linkSequence}`,
      linkSequence,
      instanceId: "agent-process-1",
      models: [{ id: "m", serviceType: ServiceType.LLM }],
    });
    await b.client.client.heartbeat(onLink(1), { headers });
    await b.client.client.heartbeat(onLink(2), { headers });
    await waitFor("a to hold box on link 2", () => a.registry.table.get("box")?.linkSequence === 2);
    // A gateway that was stopped reads link 1's last heartbeat after the agent moved, and relays it to replica a.
    const refused = await a.client.client.heartbeat(onLink(1), { headers }).then(
      () => undefined,
      (error: unknown) => ConnectError.from(error),
    );
    expect(refused?.code).to.equal(Code.FailedPrecondition);
    expect(refused?.rawMessage).to.equal("a heartbeat from link 1 of this agent, which has attached again since (link 2)");
    expect([a, b].map((r) => r.registry.table.get("box")?.linkId)).to.deep.equal(["link-2", "link-2"]);
    expect(onA.changes.every((c) => c.provider.linkId !== "link-1" || c.provider.linkSequence === 1)).to.equal(true);
    expect(onA.changes.at(-1)?.provider.linkId).to.equal("link-2");
    // A new process starts its links from 1 again, and is taken at once.
    await a.client.client.heartbeat({ ...onLink(1), instanceId: "agent-process-2" }, { headers });
    expect(a.registry.table.get("box")).to.include({ linkId: "link-1", instanceId: "agent-process-2" });
  });

  it("keeps the newer of two replicas' changes whichever reaches Redis last, and an owner's decision whatever its time", async () => {
    const [a] = [await startReplica()];
    await heartbeat(a, "box", "m-new");
    const held = a.registry.table.get("box") as Provider;
    const older = (changes: Partial<Provider>, cause: ChangeCause) => ({
      provider: create(ProviderSchema, { ...held, lastHeartbeatTime: timestampFromMs(1_000), ...changes }),
      cause,
    });
    const publisher = new Redis(redis.url());
    try {
      const send = (...changes: { provider: Provider; cause: ChangeCause }[]) =>
        publisher.publish(`${prefix}changes`, encodeChanges("another-replica", changes).message);
      const oldModels = [create(ModelSchema, { id: "m-old", serviceType: ServiceType.LLM })];
      // Both were made elsewhere before box's latest heartbeat here, and reach this replica after it.
      await send(older({ models: oldModels }, ChangeCause.HEARTBEAT), older({ models: oldModels, paused: true }, ChangeCause.OWNER));
      await waitFor("the owner's pause to arrive", () => a.registry.table.get("box")?.paused === true);
      expect(a.registry.table.get("box")?.models.map((m) => m.id)).to.deep.equal(["m-new"]);
    } finally {
      publisher.disconnect();
    }
  });

  it("rides out a stalled Redis: heartbeats answer, nothing expires, and changes made meanwhile arrive after", async () => {
    const [a, b] = [await startReplica({ ttlMs: 1_000 }), await startReplica({ ttlMs: 1_000 })];
    const onB = watch(b);
    await heartbeat(a, "box");
    await waitFor("box on b", () => onB.online.has("box"));
    redis.pause();
    try {
      // Two TTLs without Redis; heartbeats still answer at once from the replica's own table.
      const until = Date.now() + 2_000;
      while (Date.now() < until) {
        const startedAt = Date.now();
        await heartbeat(a, "box");
        expect(Date.now() - startedAt).to.be.below(500);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await heartbeat(a, "box", "while-stalled");
    } finally {
      redis.resume();
    }
    await waitFor("b to hear of the change made while Redis was stalled", () =>
      onB.changes.some((c) => c.provider.models[0]?.id === "while-stalled"),
    );
    for (let n = 0; n < 10; n++) {
      await heartbeat(a, "box", "while-stalled");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(offlineChanges(onB, "box")).to.deep.equal([]);
  });

  it("rebuilds presence when Redis comes back empty, and a provider that died meanwhile still expires once", async () => {
    const [a, b] = [await startReplica({ ttlMs: 1_000 }), await startReplica({ ttlMs: 1_000 })];
    const onA = watch(a);
    const onB = watch(b);
    await heartbeat(a, "alive");
    await heartbeat(b, "doomed");
    await waitFor("both on both", () => [onA, onB].every((s) => s.online.has("alive") && s.online.has("doomed")));
    await redis.kill();
    await redis.restart();
    const probe = new Redis(redis.url());
    try {
      const until = Date.now() + 4_000;
      while (Date.now() < until) {
        await heartbeat(a, "alive");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(await probe.zrange(`${prefix}deadlines`, 0, -1)).to.deep.equal(["alive"]);
    } finally {
      probe.disconnect();
    }
    for (const s of [onA, onB]) {
      expect(offlineChanges(s, "alive")).to.deep.equal([]);
      expect(offlineChanges(s, "doomed").map((c) => c.cause)).to.deep.equal([ChangeCause.EXPIRED]);
    }
    expect((await expiries(a)) + (await expiries(b))).to.equal(1);
  });
});
