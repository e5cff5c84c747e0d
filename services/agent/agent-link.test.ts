import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { ProviderState } from "../../gen/infermesh/v1/registry_pb.js";
import { MESH_TOKEN } from "../../test/support/registry-fixture.js";
import { bearer, type StockClient, stockClient, unary } from "../../test/support/stock-grpc-client.js";
import { waitFor } from "../../test/support/wait-for.js";
import { SILENCE_LIMIT_MS } from "../shared/link/link-protocol.js";
import { createLogger } from "../shared/logger.js";
import { providerIdFor } from "../shared/provider-id.js";
import { createSimulator, type Simulator } from "../sim/simulator.js";
import { type Agent, createAgent } from "./agent.js";
import { type AgentSettings, resolveAgentConfig } from "./agent-config.js";
import { LinkRefused } from "./mesh-link.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";
import { chatBody, infer, openInfer } from "./test-support/infer-client.js";

interface StockProvider {
  id: string;
  name: string;
  endpoint: string;
  gatewayId: string;
  linkId: string;
  online: boolean;
  state: string;
  version: string;
  load: { inFlight: number; maxConcurrency: number; queued: number };
  models: {
    id: string;
    serviceType: string;
    inputModalities: string[];
    outputModalities: string[];
    contextLength: number;
    engine: string;
  }[];
}

interface WatchEvent {
  snapshot?: { providers: StockProvider[] };
  change?: { provider: StockProvider; cause: string };
}

/** ONCE_MS is how soon "at once" is: far below the TTL of the registries here (a minute), so no TTL did it. */
const ONCE_MS = 2_000;
/** LONG_TTL_MS keeps a provider online for a minute without heartbeats: only a deregistration takes it offline sooner. */
const LONG_TTL_MS = 60_000;

/** watchProviders folds a WatchProviders stream into the list of events, as a gateway would receive them. */
function watchProviders(client: StockClient, token: string): { events: WatchEvent[]; cancel: () => void } {
  const call = (client.watchProviders as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<WatchEvent>).call(
    client,
    {},
    bearer(token),
  );
  const events: WatchEvent[] = [];
  call.on("data", (event: WatchEvent) => events.push(event));
  call.on("error", () => {});
  return { events, cancel: () => call.cancel() };
}

/** heartbeatsCounted reads the agent's heartbeat counter for one outcome. */
async function heartbeatsCounted(agent: Agent, outcome: "ok" | "failed"): Promise<number> {
  return (await agent.metrics.heartbeats.get()).values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
}

/** refusal is how listen() rejected, or undefined when it resolved. */
async function refusal(agent: Agent): Promise<unknown> {
  return agent.listen().then(
    () => undefined,
    (error: unknown) => error,
  );
}

describe("agent and its link to the mesh", () => {
  let fixture: AgentFixture | undefined;
  let simulator: Simulator;
  const cleanups: (() => void | Promise<void>)[] = [];

  /**
   * startAgent starts a registry, a gateway, a simulator and an agent of it named "alice's box" attached to the
   * gateway, with its retries shortened, and a stock client of the registry.
   */
  async function startAgent(
    options: { heartbeatIntervalMs?: number; ttlMs?: number; discoveryIntervalMs?: number; shutdownGraceMs?: number } = {},
  ): Promise<AgentFixture & { readonly registryClient: StockClient }> {
    simulator = createSimulator({ models: [{ id: "sim-llama", contextLength: 8192 }], tokensPerSecond: 40, timeToFirstTokenMs: 0 });
    const { url } = await simulator.listen();
    const { heartbeatIntervalMs = 200, ttlMs, discoveryIntervalMs, shutdownGraceMs } = options;
    fixture = await startAgentFixture({
      registryOptions: { heartbeatIntervalMs, ...(ttlMs === undefined ? {} : { ttlMs }) },
      upstreams: [{ type: "llm", url, maxConcurrency: 2 }],
      servers: [simulator],
      settings: {
        name: "alice's box",
        ...(discoveryIntervalMs === undefined ? {} : { discoveryIntervalMs }),
        ...(shutdownGraceMs === undefined ? {} : { shutdownGraceMs }),
      },
      agent: { version: "9.9.9", linkRetry: { initialMs: 20, maxMs: 100 }, discoveryBackoff: { initialMs: 50, maxMs: 100 } },
    });
    const registryClient = stockClient("RegistryService", fixture.registry.address);
    cleanups.push(() => registryClient.close());
    return { ...fixture, registryClient };
  }

  /** startAnother starts one more agent of the simulator on the fixture's gateway, with the user's key and settings. */
  function startAnother(apiKey: string, settings: Omit<AgentSettings, "mesh" | "apiKey" | "upstreams"> = {}): Agent {
    const config = resolveAgentConfig({
      mesh: fixture?.gateway.baseUrl as string,
      apiKey,
      shutdownGraceMs: 0,
      ...settings,
      upstreams: [{ type: "llm", url: simulator.url as string }],
    });
    const agent = createAgent({ config, log: createLogger("agent-test", "silent"), linkRetry: { initialMs: 20, maxMs: 100 } });
    cleanups.push(() => agent.close());
    return agent;
  }

  async function listed(registryClient: StockClient, token: string): Promise<StockProvider[]> {
    const { providers } = await unary<{ providers: StockProvider[] }>(
      registryClient,
      "listProviders",
      { includeOffline: true },
      bearer(token),
    );
    return providers;
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    await fixture?.close();
    fixture = undefined;
  });

  it("attaches through the gateway, which relays its heartbeats: models, load, name, version and where it is attached", async () => {
    const { agent, addresses, registryClient, apiKey, gateway } = await startAgent();
    const { providerId } = addresses;
    expect(addresses.metrics).to.equal(undefined);
    expect(agent.connected).to.equal(true);
    expect(gateway.gateway.links.attached(providerId as string)).to.equal(true);
    const watch = watchProviders(registryClient, MESH_TOKEN);
    cleanups.push(watch.cancel);
    const seen = await waitFor("the agent in the watch stream", () => {
      for (const event of watch.events) {
        const found = event.snapshot?.providers.find((p) => p.id === providerId) ?? event.change?.provider;
        if (found?.id === providerId) return found;
      }
      return undefined;
    });
    expect(seen).to.deep.include({
      id: providerId,
      name: "alice's box",
      endpoint: gateway.grpcAddress,
      gatewayId: gateway.gateway.settings.gatewayId,
      online: true,
      state: "PROVIDER_STATE_ACCEPTING",
      version: "9.9.9",
    });
    expect(seen.linkId).to.match(/^[0-9a-f-]{36}$/);
    expect(seen.load).to.deep.include({ inFlight: 0, maxConcurrency: 2, queued: 0 });
    expect(seen.models).to.have.length(1);
    expect(seen.models[0]).to.deep.include({
      id: "sim-llama",
      serviceType: "SERVICE_TYPE_LLM",
      inputModalities: ["MODALITY_TEXT"],
      outputModalities: ["MODALITY_TEXT"],
      contextLength: 8192,
      engine: "llamacpp",
    });
    expect(providerId).to.match(/^alice-s-box-[0-9a-f]{12}$/);
    const [own] = await listed(registryClient, apiKey);
    expect(own, "users never see where an agent is attached").to.deep.include({ id: providerId, online: true, endpoint: "", linkId: "" });
    expect(await heartbeatsCounted(agent, "ok")).to.be.above(0);
  });

  it("derives its provider id from its owner and its name, apart for two owners of one name, unless given an id", async () => {
    const { addresses, registry, apiKey } = await startAgent();
    const bobs = startAnother(await registry.keyFor("bob"), { name: "alice's box" });
    const custom = startAnother(apiKey, { name: "spare", id: "alice-spare" });
    const [bob, spare] = await Promise.all([bobs.listen(), custom.listen()]);
    expect(bob.providerId).to.match(/^alice-s-box-[0-9a-f]{12}$/);
    expect(bob.providerId, "bob's agent is not alice's").not.to.equal(addresses.providerId);
    expect(spare.providerId).to.equal("alice-spare");
    for (const id of [addresses.providerId, bob.providerId, spare.providerId]) {
      await waitFor(`${id} online`, () => registry.server.table.get(id as string)?.online);
    }
    expect(registry.server.table.get(bob.providerId as string)?.ownerUserName).to.equal("bob");
    const alice = await registry.store.authenticate(apiKey);
    expect(addresses.providerId, "the id agents that report over HTTP get: providerIdFor(owner's user id, name)").to.equal(
      providerIdFor(alice?.userId as string, "alice's box"),
    );
  });

  it("withdraws an upstream's models from the registry at once when it goes down, and brings them back", async () => {
    // A registry asking for a heartbeat every 60 s: only the agent's own change-triggered heartbeats can be seen here.
    const { registry, addresses } = await startAgent({ heartbeatIntervalMs: 60_000, discoveryIntervalMs: 100 });
    const { providerId } = addresses;
    const models = () => registry.server.table.get(providerId as string)?.models.length;
    await waitFor("the model to be listed", () => models() === 1);
    await simulator.close();
    await waitFor("the model to be withdrawn", () => models() === 0, 3_000);
    expect(registry.server.table.get(providerId as string)?.online, "the agent itself stays online").to.equal(true);
    await simulator.listen(Number(new URL(simulator.url as string).port));
    await waitFor("the model to return", () => models() === 1, 3_000);
  });

  it("keeps its link through a registry outage, counting the refused heartbeats, and registers again once it is back", async () => {
    const { agent, registry, addresses, gateway } = await startAgent();
    const providerId = addresses.providerId as string;
    await registry.outage();
    await waitFor("a heartbeat the gateway could not relay", async () => (await heartbeatsCounted(agent, "failed")) > 0, 5_000);
    expect(agent.connected, "the link stays up").to.equal(true);
    expect(gateway.gateway.links.attached(providerId)).to.equal(true);
    // The same store and port: a restarted registry remembers keys and ownership, not providers.
    await registry.restart();
    expect(registry.server.table.get(providerId)).to.equal(undefined);
    await waitFor("re-registration", () => registry.server.table.get(providerId)?.online, 5_000);
    expect(registry.server.table.get(providerId)?.models.map((m) => m.id)).to.deep.equal(["sim-llama"]);
    expect(registry.server.table.get(providerId)?.endpoint).to.equal(gateway.grpcAddress);
  });

  it("attaches again by itself within 5 s when its gateway restarts on the same port, and serves calls there", async () => {
    const { agent, addresses, registry, client, token } = await startAgent();
    const providerId = addresses.providerId as string;
    const before = registry.server.table.get(providerId)?.linkId;
    await fixture?.restartGateway();
    const gateway = fixture?.gateway;
    await waitFor("the agent attached to the new gateway", () => gateway?.gateway.links.attached(providerId), 5_000);
    await waitFor("the registry to know the new link", () => {
      const provider = registry.server.table.get(providerId);
      return provider?.online && provider.linkId !== before;
    });
    // The registry records the link before its answer travels back down to the agent.
    await waitFor("the agent to hear it is attached", () => agent.connected);
    const answered = await waitFor("a call through the new gateway", async () => {
      const result = await infer(client, { model: "sim-llama", body: chatBody("sim-llama", { max_tokens: 2 }) }, token);
      return result.status.code === grpc.status.OK && result;
    });
    expect(answered.parts.map((part) => part.part)).to.deep.equal(["head", "data", "trailer"]);
  });

  it("on stop: heartbeats DRAINING, refuses new calls, lets the call in flight finish, then goes offline at once", async () => {
    const { agent, registry, addresses, registryClient, client, token, gateway } = await startAgent({
      ttlMs: LONG_TTL_MS,
      shutdownGraceMs: 5_000,
    });
    const providerId = addresses.providerId as string;
    await waitFor("registration", () => registry.server.table.get(providerId)?.online);
    const watch = watchProviders(registryClient, MESH_TOKEN);
    cleanups.push(watch.cancel);

    const inFlight = openInfer(
      client,
      { model: "sim-llama", stream: true, body: chatBody("sim-llama", { stream: true, max_tokens: 20 }) },
      token,
    );
    await waitFor("the call to start streaming", () => inFlight.parts.some((p) => p.part === "event"));
    const stopped = agent.close();
    await waitFor("the DRAINING heartbeat", () => registry.server.table.get(providerId)?.state === ProviderState.DRAINING);
    const refused = await infer(client, { model: "sim-llama", body: chatBody("sim-llama") }, token);
    expect(refused.status.code).to.equal(grpc.status.UNAVAILABLE);
    expect(refused.status.details).to.equal("the agent is shutting down and takes no new calls");
    expect(agent.draining).to.equal(true);
    expect(agent.connected, "the link stays up while the call in flight finishes").to.equal(true);

    const finished = await inFlight.done;
    expect(finished.status.code).to.equal(grpc.status.OK);
    expect(finished.parts.at(-1)?.part).to.equal("trailer");
    expect(
      finished.parts
        .filter((p) => p.part === "event")
        .at(-1)
        ?.event?.data.toString(),
    ).to.equal("[DONE]");
    await stopped;
    expect(agent.connected).to.equal(false);
    await waitFor("the provider offline, long before its TTL", () => registry.server.table.get(providerId)?.online === false, ONCE_MS);
    expect(gateway.gateway.links.attached(providerId)).to.equal(false);
    const causes = () =>
      watch.events.flatMap((e) => (e.change?.provider.id === providerId ? [[e.change.provider.state, e.change.cause]] : []));
    await waitFor("the deregistration in the watch stream", () => causes().some(([, cause]) => cause === "CHANGE_CAUSE_DEREGISTERED"));
    expect(causes().at(-1)).to.deep.equal(["PROVIDER_STATE_DRAINING", "CHANGE_CAUSE_DEREGISTERED"]);
    expect(causes()).to.deep.include(["PROVIDER_STATE_DRAINING", "CHANGE_CAUSE_HEARTBEAT"]);
  });

  it("cuts off a call still running when the grace period ends, with an upstream_error part", async () => {
    const { agent, client, token } = await startAgent({ shutdownGraceMs: 100 });
    const long = openInfer(
      client,
      { model: "sim-llama", stream: true, body: chatBody("sim-llama", { stream: true, max_tokens: 1000 }) },
      token,
    );
    await waitFor("the call to start streaming", () => long.parts.some((p) => p.part === "event"));
    await agent.close();
    const result = await long.done;
    expect(result.status.code).to.equal(grpc.status.OK);
    expect(result.parts.at(-1)?.error).to.deep.include({ kind: "ERROR_KIND_SHUTDOWN", type: "upstream_error", httpStatus: 502 });
    expect(result.parts.at(-1)?.error?.message).to.contain("shut down");
    await simulator.waitForAbort(undefined, 1_000);
  });

  it("stops at listen() with LinkRefused and one clear message when the mesh refuses its key or its provider id", async () => {
    const { registry, addresses, gateway } = await startAgent();
    const mesh = gateway.baseUrl;
    const unknown = startAnother("im_0123456789abcdef_notakeyatall");
    const startedMs = Date.now();
    const error = await refusal(unknown);
    expect(Date.now() - startedMs, "refused at once, not when the link falls silent").to.be.below(SILENCE_LIMIT_MS);
    expect(error).to.be.instanceOf(LinkRefused);
    expect((error as Error).message).to.equal(`the mesh at ${mesh} refused this agent: invalid or revoked API key`);
    expect(unknown.connected).to.equal(false);

    const taken = startAnother(await registry.keyFor("mallory"), { id: addresses.providerId as string });
    const stolen = await refusal(taken);
    expect(stolen).to.be.instanceOf(LinkRefused);
    expect((stolen as Error).message).to.equal(
      `the mesh at ${mesh} refused this agent: provider '${addresses.providerId}' belongs to another user`,
    );
    expect(registry.server.table.get(addresses.providerId as string)?.ownerUserName, "alice's provider stays hers").to.equal("alice");
    expect(await refusal(taken), "listen() gives the same answer again").to.equal(stolen);
  });

  it("loses its link when its key is revoked: the provider goes offline at once and is not served again", async () => {
    const { agent, registry, addresses, apiKey, gateway } = await startAgent({ ttlMs: LONG_TTL_MS });
    const providerId = addresses.providerId as string;
    const principal = await registry.store.authenticate(apiKey);
    await registry.store.revokeApiKey(principal?.keyId as string);
    await waitFor("the provider offline, long before its TTL", () => registry.server.table.get(providerId)?.online === false, ONCE_MS);
    await waitFor("the link closed", () => !gateway.gateway.links.attached(providerId), ONCE_MS);
    await waitFor("the agent to see it", () => !agent.connected, 5_000);
    expect(registry.server.table.get(providerId)?.online).to.equal(false);
  });
});
