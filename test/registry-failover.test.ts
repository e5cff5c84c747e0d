import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { expect } from "chai";
import { RegistryService } from "../gen/infermesh/v1/registry_pb.js";
import { type Agent, createAgent } from "../services/agent/agent.js";
import { resolveAgentConfig } from "../services/agent/agent-config.js";
import { createGateway, type Gateway } from "../services/gateway/gateway.js";
import { RegistryReplicas } from "../services/gateway/registry-replicas.js";
import { createRegistry, type Registry } from "../services/registry/registry.js";
import type { RegistryStore } from "../services/registry/store/registry-store.js";
import { createSqliteStore } from "../services/registry/store/sqlite-store.js";
import { formatHostPort } from "../services/shared/host-port.js";
import { createLogger } from "../services/shared/logger.js";
import { createSimulator, expectedCompletionText, type Simulator } from "../services/sim/simulator.js";
import { MESH_TOKEN } from "./support/registry-fixture.js";
import { type StallableProxy, startStallableProxy } from "./support/stallable-proxy.js";
import { waitFor } from "./support/wait-for.js";

// A gateway given several registry replicas uses one at a time; when that one dies or freezes, the watch and every
// call move to the next, and no provider goes offline on the way. Both replicas share one store, so keys and accounts
// agree; presence is each replica's own here, and the heartbeats the gateway relays register the agent again on
// whichever replica the gateway uses.

const MESSAGES = [{ role: "user" as const, content: "hi" }];
const ANSWER = expectedCompletionText(MESSAGES, 2);
/** HEARTBEAT_INTERVAL_MS is how often the replicas tell agents to heartbeat: short, so the new replica hears soon. */
const HEARTBEAT_INTERVAL_MS = 200;
/**
 * TTL_MS is long beside the interval: on a loaded machine a few late heartbeats must not take the provider offline,
 * which would be the TTL at work and say nothing of the move between replicas.
 */
const TTL_MS = 10_000;

/** Replica is one registry replica on a loopback port, over the shared store. */
interface Replica {
  readonly registry: Registry;
  readonly address: string;
}

async function startReplica(store: RegistryStore): Promise<Replica> {
  const registry = createRegistry({
    store,
    meshToken: MESH_TOKEN,
    shutdownGraceMs: 0,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    ttlMs: TTL_MS,
    listen: { host: "127.0.0.1", port: 0 },
  });
  const { grpc } = await registry.listen();
  return { registry, address: formatHostPort(grpc) };
}

/** Watcher samples whether the gateway's table holds a provider, every 20 ms, until stopped. */
function watchTable(gateway: Gateway, providerId: string): { stop(): number } {
  let lacked = 0;
  const timer = setInterval(() => {
    if (gateway.table.provider(providerId) === undefined) lacked++;
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      if (gateway.table.provider(providerId) === undefined) lacked++;
      return lacked;
    },
  };
}

/** Answer is what a chat request got: its status and the answer's text. */
interface Answer {
  readonly status: number;
  readonly content: string | undefined;
}

/** askForever sends chat requests one after another until stopped, and collects their statuses. */
function askForever(baseUrl: string, apiKey: string): { readonly answers: Answer[]; stop(): Promise<Answer[]> } {
  const answers: Answer[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const response = await fetch(`${baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-llama", messages: MESSAGES, max_tokens: 2 }),
      });
      const body = (await response.json()) as { choices?: { message: { content: string } }[] };
      answers.push({ status: response.status, content: body.choices?.[0]?.message.content });
    }
  })();
  return {
    answers,
    async stop() {
      running = false;
      await loop;
      return answers;
    },
  };
}

describe("registry replicas: a gateway moves off one that died or froze", function () {
  this.timeout(60_000);
  let dir: string;
  let store: RegistryStore;
  let replicas: Replica[];
  let proxy: StallableProxy | undefined;
  let gateway: Gateway;
  let baseUrl: string;
  let simulator: Simulator;
  let agent: Agent;
  let providerId: string;
  let apiKey: string;

  /** start runs two replicas, a gateway given both (the first through a stallable proxy, when asked), and an agent. */
  async function start(throughProxy: boolean): Promise<void> {
    dir = mkdtempSync(join(tmpdir(), "infermesh-replicas-"));
    store = createSqliteStore({ path: join(dir, "infermesh.db") });
    replicas = [await startReplica(store), await startReplica(store)];
    proxy = throughProxy ? await startStallableProxy(replicas[0]?.address ?? "") : undefined;
    const first = proxy?.address ?? replicas[0]?.address;
    gateway = createGateway({
      registry: [`http://${first}`, `http://${replicas[1]?.address}`],
      meshToken: MESH_TOKEN,
      log: createLogger("gateway", "silent"),
      listen: { host: "127.0.0.1", port: 0 },
      shutdownGraceMs: 1_000,
    });
    baseUrl = `http://${formatHostPort((await gateway.listen()).http)}`;
    await gateway.registryLink.ready;
    apiKey = (await store.createApiKey("erin")).apiKey;
    simulator = createSimulator({});
    const { url } = await simulator.listen();
    agent = createAgent({
      config: resolveAgentConfig({
        mesh: baseUrl,
        apiKey,
        name: "erin-agent",
        upstreams: [{ type: "llm", url }],
        logLevel: "silent",
        shutdownGraceMs: 500,
      }),
      log: createLogger("agent", "silent"),
    });
    await agent.listen();
    providerId = await waitFor("the agent attached", () => agent.providerId);
    await waitFor("the agent in the gateway's table", () => gateway.table.provider(providerId) !== undefined);
  }

  afterEach(async () => {
    await agent.close();
    await simulator.close();
    await gateway.close();
    await proxy?.close();
    for (const { registry } of replicas) await registry.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("moves the watch and the relayed heartbeats to the next replica when the current one dies, and never loses the provider", async () => {
    await start(false);
    const [one, two] = replicas as [Replica, Replica];
    expect(gateway.registryLink.registryUrl).to.equal(`http://${one.address}`);
    await waitFor("the agent online on replica 1", () => one.registry.table.get(providerId)?.online === true);

    const table = watchTable(gateway, providerId);
    const asking = askForever(baseUrl, apiKey);
    await waitFor("a first answer", () => asking.answers.length > 0);
    const killedAt = Date.now();
    await one.registry.close();
    await waitFor(
      "the gateway's watch on replica 2",
      () => gateway.registryLink.registryUrl === `http://${two.address}` && gateway.registryLink.connected,
      5_000,
    );
    const movedMs = Date.now() - killedAt;
    await waitFor("the agent online on replica 2", () => two.registry.table.get(providerId)?.online === true, 10_000, 20);
    const onlineMs = Date.now() - killedAt;
    const answeredThen = asking.answers.length;
    await waitFor("answers after the move", () => asking.answers.length >= answeredThen + 5);
    const answers = await asking.stop();
    const lacked = table.stop();

    console.log(`      moved off the killed replica in ${movedMs} ms; the agent online on replica 2 after ${onlineMs} ms`);
    expect(lacked, "samples of the gateway's table without the provider").to.equal(0);
    expect(
      answers.filter((answer) => answer.status !== 200 || answer.content !== ANSWER),
      "answers that failed",
    ).to.deep.equal([]);
    expect(await (await fetch(`${baseUrl}/health`)).json()).to.deep.equal({ status: "ok", registry: "connected" });
  });

  it("moves off a replica that froze within the keepalive's reach, and checks new keys on the next one", async () => {
    await start(true);
    const [one, two] = replicas as [Replica, Replica];
    await waitFor("the agent online on replica 1", () => one.registry.table.get(providerId)?.online === true);

    const table = watchTable(gateway, providerId);
    const frozenAt = Date.now();
    proxy?.stall();
    await waitFor(
      "the gateway's watch on replica 2",
      () => gateway.registryLink.registryUrl === `http://${two.address}` && gateway.registryLink.connected,
      6_000,
      20,
    );
    const movedMs = Date.now() - frozenAt;
    const fresh = (await store.createApiKey("frank")).apiKey;
    const response = await fetch(`${baseUrl}/v1/models`, { headers: { authorization: `Bearer ${fresh}` } });
    const lacked = table.stop();

    console.log(`      moved off the frozen replica in ${movedMs} ms`);
    expect(movedMs, "time to move off the frozen replica").to.be.below(4_000);
    expect(response.status, "a key never seen before, checked on replica 2").to.equal(200);
    expect(lacked, "samples of the gateway's table without the provider").to.equal(0);
  });

  it("moves the watch along when a call moves the link, so that one replica takes everything", async () => {
    await start(true);
    const [one, two] = replicas as [Replica, Replica];
    await waitFor("the gateway watching replica 1", async () => (await watchers(one.registry)) === 1);
    // A replica that stops answering long enough for a call's deadline, and not for the keepalive's.
    proxy?.stall();
    const failure = await gateway.registryLink.registry
      .listProviders({}, { headers: gateway.registryLink.meshHeaders, timeoutMs: 200 })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    proxy?.resume();
    expect(failure).to.be.instanceOf(ConnectError).with.property("code", Code.DeadlineExceeded);
    expect(gateway.registryLink.registryUrl).to.equal(`http://${two.address}`);
    await waitFor("the watch on replica 2", async () => (await watchers(two.registry)) === 1 && gateway.registryLink.connected, 2_000);
    await waitFor("no watch left on replica 1", async () => (await watchers(one.registry)) === 0, 2_000);
  });
});

/** watchers counts a registry's connected WatchProviders streams, as its metrics do. */
async function watchers(registry: Registry): Promise<number | undefined> {
  return (await registry.metrics.registry.getSingleMetric("infermesh_registry_watch_subscribers")?.get())?.values[0]?.value;
}

describe("RegistryReplicas: which failed calls move the link, and which go again", function () {
  this.timeout(30_000);
  const headers = { authorization: `Bearer ${MESH_TOKEN}` };
  let dir: string;
  let store: RegistryStore;
  let live: Replica;
  let dead: string;
  let replicas: RegistryReplicas | undefined;
  let proxy: StallableProxy | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "infermesh-replicas-"));
    store = createSqliteStore({ path: join(dir, "infermesh.db") });
    live = await startReplica(store);
    dead = await closedPort();
  });

  afterEach(async () => {
    replicas?.close();
    replicas = undefined;
    await proxy?.close();
    proxy = undefined;
    await live.registry.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function replicasAt(...addresses: string[]): RegistryReplicas {
    replicas = new RegistryReplicas({
      urls: addresses.map((address) => `http://${address}`),
      keepalive: { pingIntervalMs: 1_000, pingTimeoutMs: 2_000 },
      log: createLogger("gateway", "silent"),
    });
    return replicas;
  }

  it("checks a new key on the next replica, on the first try, when the current one refuses connections", async () => {
    const link = replicasAt(dead, live.address);
    const apiKey = (await store.createApiKey("grace")).apiKey;
    const { principal } = await createClient(RegistryService, link.transport).authenticate({ apiKey }, { headers, timeoutMs: 2_000 });
    expect(principal?.userName).to.equal("grace");
    expect(link.url()).to.equal(`http://${live.address}`);
  });

  it("sends any call again when the connection was refused: the call never reached a replica", async () => {
    const link = replicasAt(dead, live.address);
    const { apiKey } = await createClient(RegistryService, link.transport).createApiKey({ userName: "heidi" }, { headers });
    expect(apiKey).to.be.a("string").and.not.equal("");
  });

  it("moves once when calls fail together", async () => {
    const link = replicasAt(dead, live.address, live.address);
    const apiKey = (await store.createApiKey("ivan")).apiKey;
    const client = createClient(RegistryService, link.transport);
    await Promise.all([1, 2, 3].map(() => client.authenticate({ apiKey }, { headers })));
    expect(link.current).to.equal(1);
  });

  it("moves off a replica that lets a call's deadline pass, without sending the call again", async () => {
    proxy = await startStallableProxy(live.address);
    proxy.stall();
    const link = replicasAt(proxy.address, live.address);
    const apiKey = (await store.createApiKey("judy")).apiKey;
    const client = createClient(RegistryService, link.transport);
    const failure = await client.authenticate({ apiKey }, { headers, timeoutMs: 300 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).to.be.instanceOf(ConnectError).with.property("code", Code.DeadlineExceeded);
    expect(link.url()).to.equal(`http://${live.address}`);
    expect((await client.authenticate({ apiKey }, { headers })).principal?.userName).to.equal("judy");
  });

  it("with one replica, fails as before and stays on it", async () => {
    const link = replicasAt(dead);
    const failure = await createClient(RegistryService, link.transport)
      .authenticate({ apiKey: "none" }, { headers })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(failure).to.be.instanceOf(ConnectError).with.property("code", Code.Unavailable);
    expect(link.current).to.equal(0);
  });
});

/** closedPort is a loopback address nothing listens on: connections to it are refused. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}
