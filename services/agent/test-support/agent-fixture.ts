import { type RegistryFixture, startRegistry } from "../../../test/support/registry-fixture.js";
import type { StockClient } from "../../../test/support/stock-grpc-client.js";
import type { RegistryOptions } from "../../registry/registry.js";
import { formatHostPort } from "../../shared/host-port.js";
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
  /** settings are the agent's settings besides the registry, its key, its port and its upstreams. */
  readonly settings?: Omit<AgentSettings, "registry" | "apiKey" | "upstreams">;
  /** agent are createAgent's options besides the config and the log (hostname, version, backoffs). */
  readonly agent?: Omit<AgentOptions, "config" | "log">;
  /** mediaClient gives the client the gateway's media message limit, for events larger than gRPC's default 4 MiB. */
  readonly mediaClient?: boolean;
}

/** AgentFixture is a started agent on a loopback port, registered with a real registry, and a stock client to it. */
export interface AgentFixture {
  readonly registry: RegistryFixture;
  /** apiKey is the user's key the agent registered with; callers presenting it to the agent are refused. */
  readonly apiKey: string;
  readonly agent: Agent;
  readonly addresses: AgentAddresses;
  /** client is a stock grpc-js AgentService client, as any gateway written against the protos would have. */
  readonly client: StockClient;
  /** token is the agent token callers must present. */
  readonly token: string;
  /** close stops the client, the agent (1 s of grace), the model servers, then the registry when the fixture owns it. */
  close(): Promise<void>;
}

/** DEFAULT_HEARTBEAT_INTERVAL_MS keeps registration quick in tests. */
const DEFAULT_HEARTBEAT_INTERVAL_MS = 200;
/** STOP_GRACE_MS is the grace close() gives calls still running, unless the settings give another. */
const STOP_GRACE_MS = 1_000;

const log = createLogger("agent-test", "silent");

/** startAgentFixture starts a registry (unless given), an agent of the upstreams on 127.0.0.1:0, and a client. */
export async function startAgentFixture(options: AgentFixtureOptions): Promise<AgentFixture> {
  const ownsRegistry = options.registry === undefined;
  const registry =
    options.registry ?? (await startRegistry({ heartbeatIntervalMs: DEFAULT_HEARTBEAT_INTERVAL_MS, ...options.registryOptions }));
  const apiKey = await registry.keyFor(options.user ?? "alice");
  const config = resolveAgentConfig({
    registry: `http://${registry.address}`,
    apiKey,
    listen: { host: "127.0.0.1", port: 0 },
    shutdownGraceMs: STOP_GRACE_MS,
    ...options.settings,
    upstreams: options.upstreams,
  });
  const agent = createAgent({ ...options.agent, config, log });
  const stopAll = async (): Promise<void> => {
    await agent.close();
    for (const server of options.servers ?? []) await server.close();
    if (ownsRegistry) await registry.stop();
  };
  let addresses: AgentAddresses;
  try {
    addresses = await agent.listen();
  } catch (error) {
    await stopAll();
    throw error;
  }
  const address = formatHostPort(addresses.grpc);
  const client = options.mediaClient === true ? mediaAgentClient(address) : agentClient(address);
  return {
    registry,
    apiKey,
    agent,
    addresses,
    client,
    token: agent.agentToken,
    async close() {
      client.close();
      await stopAll();
    },
  };
}
