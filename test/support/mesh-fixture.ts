import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Agent, createAgent } from "../../services/agent/agent.js";
import { type AgentSettings, resolveAgentConfig, type UpstreamType } from "../../services/agent/agent-config.js";
import type { GatewayOptions } from "../../services/gateway/gateway.js";
import type { RegistryOptions } from "../../services/registry/registry.js";
import { createLogger } from "../../services/shared/logger.js";
import { createSimulator, type Simulator, type SimulatorOptions } from "../../services/sim/simulator.js";
import { type GatewayFixture, startGateway } from "./gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./registry-fixture.js";
import { waitFor } from "./wait-for.js";

/** Tap records the raw response bodies a model server sent, as the agent received them. */
export interface Tap {
  readonly url: string;
  /** bodies are the response bodies, in order of completion. */
  readonly bodies: Buffer[];
  close(): Promise<void>;
}

/**
 * startTap puts a recording pass-through proxy in front of a model server, so a test can compare what the server
 * emitted with what reached the client, byte for byte.
 */
export async function startTap(target: string): Promise<Tap> {
  const bodies: Buffer[] = [];
  const server: Server = createServer((req, res) => {
    const upstream = httpRequest(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      const chunks: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        res.write(chunk);
      });
      answer.on("end", () => {
        bodies.push(Buffer.concat(chunks));
        res.end();
      });
    });
    req.pipe(upstream);
    res.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** MeshAgent is an agent of the test mesh with its own simulated model server. */
export interface MeshAgent {
  readonly agent: Agent;
  readonly simulator: Simulator;
  readonly providerId: string;
}

/** Mesh is a whole mesh on loopback: a registry, a gateway, and agents added per user. */
export interface Mesh {
  readonly registry: RegistryFixture;
  readonly gateway: GatewayFixture;
  /** addAgent starts a simulator and an agent serving it for the user, and waits until the gateway routes to it. */
  addAgent(options: {
    user: string;
    apiKey: string;
    type?: UpstreamType;
    sim?: SimulatorOptions;
    upstreamUrl?: string;
    settings?: Partial<AgentSettings>;
  }): Promise<MeshAgent>;
  stop(): Promise<void>;
}

/** AGENT_STOP_GRACE_MS is how long an agent the mesh started lets calls finish when it stops. */
const AGENT_STOP_GRACE_MS = 500;

/** startMesh starts a registry and a gateway on loopback ports. */
export async function startMesh(
  registryOptions: Partial<Omit<RegistryOptions, "store" | "meshToken">> = {},
  gatewayOptions: Partial<Omit<GatewayOptions, "registry" | "meshToken">> = {},
): Promise<Mesh> {
  const registry = await startRegistry(registryOptions);
  const gateway = await startGateway(registry.address, gatewayOptions);
  const agents: MeshAgent[] = [];
  return {
    registry,
    gateway,
    async addAgent({ user, apiKey, type, sim = {}, upstreamUrl, settings = {} }) {
      const simulator = createSimulator(sim);
      const { url } = await simulator.listen();
      const agent = createAgent({
        config: resolveAgentConfig({
          mesh: gateway.baseUrl,
          apiKey,
          name: `${user}-agent-${agents.length}`,
          upstreams: upstreamsFor(type, upstreamUrl ?? url, sim),
          logLevel: "silent",
          shutdownGraceMs: AGENT_STOP_GRACE_MS,
          ...settings,
        }),
        log: createLogger("agent", "silent"),
      });
      await agent.listen();
      // A first dial may fail on a loaded machine; the agent dials again by itself.
      const providerId = await waitFor(`the agent of ${user} attached`, () => agent.providerId);
      await waitFor(`agent ${providerId} in the gateway's table`, () => {
        const provider = gateway.gateway.table.provider(providerId);
        return provider !== undefined && provider.models.length > 0;
      });
      const meshAgent = { agent, simulator, providerId };
      agents.push(meshAgent);
      return meshAgent;
    },
    async stop() {
      for (const { agent, simulator } of agents) {
        await agent.close();
        await simulator.close();
      }
      await gateway.stop();
      await registry.stop();
    },
  };
}

/**
 * upstreamsFor points an agent at one simulator: as one upstream of the given type, or, when the simulator serves
 * several kinds and no type is given, one upstream per kind exposing that kind's models (as `infermesh dev` does).
 */
function upstreamsFor(type: UpstreamType | undefined, url: string, sim: SimulatorOptions) {
  if (type) return [{ type, url }];
  const kinds = new Set((sim.models ?? []).map((m) => m.kind ?? "llm"));
  if (kinds.size <= 1) return [{ type: ([...kinds][0] ?? "llm") as UpstreamType, url }];
  return [...kinds].map((kind) => ({
    type: kind,
    url,
    expose: (sim.models ?? []).filter((m) => (m.kind ?? "llm") === kind).map((m) => m.id),
  }));
}
