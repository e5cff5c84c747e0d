import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { ProviderState } from "../../gen/infermesh/v1/registry_pb.js";
import { MESH_TOKEN } from "../../test/support/registry-fixture.js";
import { bearer, type StockClient, stockClient, unary } from "../../test/support/stock-grpc-client.js";
import { waitFor } from "../../test/support/wait-for.js";
import { createRegistry, type Registry } from "../registry/registry.js";
import { parseHostPort } from "../shared/host-port.js";
import { createSimulator, type Simulator } from "../sim/simulator.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";
import { chatBody, infer, openInfer } from "./test-support/infer-client.js";

interface StockProvider {
  id: string;
  name: string;
  endpoint: string;
  online: boolean;
  state: string;
  agentToken: string;
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

/** healthStatus asks a server's grpc.health.v1 service about the AgentService, as a load balancer would. */
async function healthStatus(address: string): Promise<string> {
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const client = new loaded.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as StockClient;
  try {
    return (await unary<{ status: string }>(client, "check", { service: "infermesh.v1.AgentService" }, new grpc.Metadata())).status;
  } finally {
    client.close();
  }
}

describe("agent and registry", () => {
  let fixture: AgentFixture | undefined;
  let simulator: Simulator;
  const cleanups: (() => void)[] = [];

  /**
   * startAgent starts a registry, a simulator and an agent of it named "alice's box" with its retries shortened, and
   * a stock client of the registry.
   */
  async function startAgent(
    options: { heartbeatIntervalMs?: number; discoveryIntervalMs?: number; shutdownGraceMs?: number } = {},
  ): Promise<AgentFixture & { readonly registryClient: StockClient }> {
    simulator = createSimulator({ models: [{ id: "sim-llama", contextLength: 8192 }], tokensPerSecond: 40, timeToFirstTokenMs: 0 });
    const { url } = await simulator.listen();
    const { heartbeatIntervalMs = 200, discoveryIntervalMs, shutdownGraceMs } = options;
    fixture = await startAgentFixture({
      registryOptions: { heartbeatIntervalMs },
      upstreams: [{ type: "llm", url, maxConcurrency: 2 }],
      servers: [simulator],
      settings: {
        name: "alice's box",
        ...(discoveryIntervalMs === undefined ? {} : { discoveryIntervalMs }),
        ...(shutdownGraceMs === undefined ? {} : { shutdownGraceMs }),
      },
      agent: { version: "9.9.9", registryRetry: { initialMs: 20, maxMs: 100 }, discoveryBackoff: { initialMs: 50, maxMs: 100 } },
    });
    const registryClient = stockClient("RegistryService", fixture.registry.address);
    cleanups.push(() => registryClient.close());
    return { ...fixture, registryClient };
  }

  async function provider(registryClient: StockClient, token: string): Promise<StockProvider | undefined> {
    const { providers } = await unary<{ providers: StockProvider[] }>(
      registryClient,
      "listProviders",
      { includeOffline: true },
      bearer(token),
    );
    return providers[0];
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    await fixture?.close();
    fixture = undefined;
  });

  it("heartbeats its models, load, endpoint and token; the mesh token sees the token, the user does not", async () => {
    const { agent, addresses, registryClient, apiKey } = await startAgent();
    const { endpoint, providerId } = addresses;
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
      endpoint,
      online: true,
      state: "PROVIDER_STATE_ACCEPTING",
      version: "9.9.9",
    });
    expect(seen.agentToken).to.equal(agent.agentToken);
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
    expect(providerId).to.match(/-[0-9a-f]{12}$/);
    expect((await provider(registryClient, apiKey))?.agentToken, "users never see agent tokens").to.equal("");
  });

  it("withdraws an upstream's models from the registry at once when it goes down, and brings them back", async () => {
    // A registry asking for a heartbeat every 60 s: only the agent's own change-triggered heartbeats can be seen here.
    const { registry, addresses } = await startAgent({ heartbeatIntervalMs: 60_000, discoveryIntervalMs: 100 });
    const { providerId } = addresses;
    const models = () => registry.server.table.get(providerId)?.models.length;
    await waitFor("the model to be listed", () => models() === 1);
    await simulator.close();
    await waitFor("the model to be withdrawn", () => models() === 0, 3_000);
    expect(registry.server.table.get(providerId)?.online, "the agent itself stays online").to.equal(true);
    await simulator.listen(Number(new URL(simulator.url as string).port));
    await waitFor("the model to return", () => models() === 1, 3_000);
  });

  it("re-registers by itself after the registry restarts", async () => {
    const { agent, registry, addresses } = await startAgent();
    const { providerId } = addresses;
    await waitFor("registration", () => registry.server.table.get(providerId)?.online);
    await registry.server.close();
    // The same store and port: a restarted registry remembers keys and ownership, not providers.
    let restarted: Registry | undefined = createRegistry({
      store: registry.store,
      meshToken: MESH_TOKEN,
      heartbeatIntervalMs: 200,
      shutdownGraceMs: 0,
      listen: parseHostPort("registry", registry.address),
    });
    cleanups.push(() => void restarted?.close());
    await restarted.listen();
    expect(restarted.table.get(providerId)).to.equal(undefined);
    await waitFor("re-registration", () => restarted?.table.get(providerId)?.online, 5_000);
    expect(restarted.table.get(providerId)?.models.map((m) => m.id)).to.deep.equal(["sim-llama"]);
    await agent.close();
    await restarted.close();
    restarted = undefined;
  });

  it("on stop: heartbeats DRAINING, refuses new calls, lets the call in flight finish, then deregisters", async () => {
    const { agent, registry, addresses, registryClient, client } = await startAgent({ shutdownGraceMs: 5_000 });
    const { providerId } = addresses;
    const grpcPort = addresses.grpc.port;
    await waitFor("registration", () => registry.server.table.get(providerId)?.online);
    const watch = watchProviders(registryClient, MESH_TOKEN);
    cleanups.push(watch.cancel);

    expect(await healthStatus(`127.0.0.1:${grpcPort}`)).to.equal("SERVING");
    const inFlight = openInfer(
      client,
      { model: "sim-llama", stream: true, body: chatBody("sim-llama", { stream: true, max_tokens: 20 }) },
      agent.agentToken,
    );
    await waitFor("the call to start streaming", () => inFlight.parts.some((p) => p.part === "event"));
    const stopped = agent.close();
    await waitFor("the DRAINING heartbeat", () => registry.server.table.get(providerId)?.state === ProviderState.DRAINING);
    const refused = await infer(client, { model: "sim-llama", body: chatBody("sim-llama") }, agent.agentToken);
    expect(refused.status.code).to.equal(grpc.status.UNAVAILABLE);
    expect(await healthStatus(`127.0.0.1:${grpcPort}`)).to.equal("NOT_SERVING");

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
    expect(registry.server.table.get(providerId)?.online).to.equal(false);
    const causes = watch.events.flatMap((e) => (e.change?.provider.id === providerId ? [[e.change.provider.state, e.change.cause]] : []));
    expect(causes.at(-1)).to.deep.equal(["PROVIDER_STATE_DRAINING", "CHANGE_CAUSE_DEREGISTERED"]);
    expect(causes).to.deep.include(["PROVIDER_STATE_DRAINING", "CHANGE_CAUSE_HEARTBEAT"]);
  });

  it("cuts off a call still running when the grace period ends, with an upstream_error part", async () => {
    const { agent, client } = await startAgent({ shutdownGraceMs: 100 });
    const long = openInfer(
      client,
      { model: "sim-llama", stream: true, body: chatBody("sim-llama", { stream: true, max_tokens: 1000 }) },
      agent.agentToken,
    );
    await waitFor("the call to start streaming", () => long.parts.some((p) => p.part === "event"));
    await agent.close();
    const result = await long.done;
    expect(result.status.code).to.equal(grpc.status.OK);
    expect(result.parts.at(-1)?.error).to.deep.include({ kind: "ERROR_KIND_SHUTDOWN", type: "upstream_error", httpStatus: 502 });
    expect(result.parts.at(-1)?.error?.message).to.contain("shut down");
    await simulator.waitForAbort(undefined, 1_000);
  });
});
