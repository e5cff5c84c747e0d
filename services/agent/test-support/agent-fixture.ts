import { type GatewayFixture, startGateway } from "../../../test/support/gateway-fixture.js";
import { MESH_TOKEN, type RegistryFixture, startRegistry } from "../../../test/support/registry-fixture.js";
import type { StockClient } from "../../../test/support/stock-grpc-client.js";
import { waitFor } from "../../../test/support/wait-for.js";
import type { GatewayOptions } from "../../gateway/gateway.js";
import type { RegistryOptions } from "../../registry/registry.js";
import { parseHostPort } from "../../shared/host-port.js";
import { createLogger } from "../../shared/logger.js";
import { type Agent, type AgentAddresses, type AgentOptions, createAgent } from "../agent.js";
import { type AgentSettings, resolveAgentConfig, type UpstreamSettings } from "../agent-config.js";
import { agentClient, mediaAgentClient } from "./infer-client.js";

/** ModelServer is a model server behind the agent (a simulator, a fake upstream) that the fixture closes last. */
export interface ModelServer {
  close(): Promise<void>;
}

/** AgentFixtureOptions says which agent to start; everything but its upstreams has a default. */
export interface AgentFixtureOptions {
  /** upstreams are the agent's model servers, already listening. */
  readonly upstreams: readonly UpstreamSettings[];
  /** servers are the model servers behind upstreams, closed by close() once the agent has stopped. */
  readonly servers?: readonly ModelServer[];
  /** registry is one the test keeps across agents, left running by close(); by default the fixture starts its own. */
  readonly registry?: RegistryFixture;
  /** registryOptions configure the registry the fixture starts (a heartbeat every 200 ms by default). */
  readonly registryOptions?: Partial<Omit<RegistryOptions, "store" | "meshToken">>;
  /** user owns the API key the agent registers with. */
  readonly user?: string;
  /** gatewayOptions configure the gateway the agent attaches to. */
  readonly gatewayOptions?: Partial<Omit<GatewayOptions, "registry" | "meshToken">>;
  /** settings are the agent's settings besides the mesh, its key and its upstreams. */
  readonly settings?: Omit<AgentSettings, "mesh" | "apiKey" | "upstreams">;
  /** agent are createAgent's options besides the config and the log (hostname, version, backoffs). */
  readonly agent?: Omit<AgentOptions, "config" | "log">;
  /** mediaClient gives the client the gateway's media message limit, for events larger than gRPC's default 4 MiB. */
  readonly mediaClient?: boolean;
}

/**
 * AgentFixture is a started agent attached to a real gateway (and its registry), and a stock AgentService client to
 * that gateway, as the mesh's other gateways call it: every call goes down the agent's link.
 */
export interface AgentFixture {
  readonly registry: RegistryFixture;
  /** gateway is the gateway the agent attached to: after restartGateway(), the new one. */
  readonly gateway: GatewayFixture;
  readonly providerId: string;
  /** apiKey is the user's key the agent registered with; callers presenting it to the agent are refused. */
  readonly apiKey: string;
  readonly agent: Agent;
  readonly addresses: AgentAddresses;
  /** client is a stock grpc-js AgentService client of the gateway, every call aimed at this agent's provider. */
  readonly client: StockClient;
  /** token is the mesh token the gateway's AgentService requires. */
  readonly token: string;
  /**
   * restartGateway stops the gateway and starts another with the same options on the same ports, as an operator's
   * restart does: the agent's link breaks, and the client reaches the new gateway at the old address.
   */
  restartGateway(): Promise<void>;
  /** close stops the client, the agent (1 s of grace), the model servers, the gateway, then the registry when the fixture owns it. */
  close(): Promise<void>;
}

/** DEFAULT_HEARTBEAT_INTERVAL_MS keeps registration quick in tests. */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 200;
/** STOP_GRACE_MS is the grace close() gives calls still running, unless the settings give another. */
const STOP_GRACE_MS = 1_000;

const log = createLogger("agent-test", "silent");

/**
 * startAgentFixture starts a registry (unless given), a gateway on 127.0.0.1:0, an agent of the upstreams attached to
 * it, and a client of the gateway aimed at the agent.
 */
export async function startAgentFixture(options: AgentFixtureOptions): Promise<AgentFixture> {
  const ownsRegistry = options.registry === undefined;
  const registry =
    options.registry ?? (await startRegistry({ heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS, ...options.registryOptions }));
  const apiKey = await registry.keyFor(options.user ?? "alice");
  let gateway = await startGateway(registry.address, options.gatewayOptions);
  const config = resolveAgentConfig({
    mesh: gateway.baseUrl,
    apiKey,
    shutdownGraceMs: STOP_GRACE_MS,
    ...options.settings,
    upstreams: options.upstreams,
  });
  const agent = createAgent({ ...options.agent, config, log });
  const stopAll = async (): Promise<void> => {
    await agent.close();
    for (const server of options.servers ?? []) await server.close();
    await gateway.stop();
    if (ownsRegistry) await registry.stop();
  };
  let addresses: AgentAddresses;
  try {
    addresses = await agent.listen();
  } catch (error) {
    await stopAll();
    throw error;
  }
  const providerId = addresses.providerId;
  if (providerId === undefined) {
    await stopAll();
    throw new Error("the agent did not attach to the gateway");
  }
  await waitFor("the agent in the gateway's table", () => gateway.gateway.table.provider(providerId) !== undefined);
  const stock = options.mediaClient === true ? mediaAgentClient(gateway.grpcAddress) : agentClient(gateway.grpcAddress);
  const client = aimedAt(stock, providerId);
  return {
    registry,
    providerId,
    apiKey,
    agent,
    addresses,
    client,
    token: MESH_TOKEN,
    get gateway() {
      return gateway;
    },
    async restartGateway() {
      const http = { host: "127.0.0.1", port: Number(new URL(gateway.baseUrl).port) };
      const grpc = parseHostPort("gateway", gateway.grpcAddress);
      await gateway.stop();
      gateway = await startGateway(registry.address, { ...options.gatewayOptions, listen: http, grpcListen: grpc });
    },
    async close() {
      client.close();
      await stopAll();
    },
  };
}

/** aimedAt makes every Infer request of a stock client name the provider, as a gateway forwarding to a peer does. */
function aimedAt(client: StockClient, providerId: string): StockClient {
  return new Proxy(client, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (property !== "infer" || typeof value !== "function") return value;
      return (request: object, ...rest: unknown[]) =>
        (value as (...args: unknown[]) => unknown).call(target, { ...request, providerId }, ...rest);
    },
  });
}
