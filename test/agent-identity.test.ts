import { hostname } from "node:os";
import { expect } from "chai";
import { type Agent, createAgent } from "../services/agent/agent.js";
import { createLogger } from "../services/shared/logger.js";
import { providerIdFor } from "../services/shared/provider-id.js";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { parseAgentConfig } from "../src/cli/agent-flags.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { waitFor } from "./support/wait-for.js";

// "A provider's identity is a name its owner chooses (default: the host name), stable across restarts, address and
// port changes." Agents here are configured from the command line as `infermesh agent` is, and built as it builds
// them: without --name they are named by os.hostname(), and the provider id follows from the owner and the name
// alone, whatever the agent's model server's address and port.

const MODEL = "identity-model";
/** OTHER_LOOPBACK is a second local address, as a machine that changed networks has; Linux routes all of 127/8 to lo. */
const OTHER_LOOPBACK = "127.0.0.2";

/** RunningAgent is an agent in process and the simulated model server it serves. */
interface RunningAgent {
  readonly agent: Agent;
  readonly simulator: Simulator;
  readonly providerId: string;
}

describe("a provider's identity", function () {
  this.timeout(30_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let key: string;
  let ownerUserId: string;
  const running = new Set<RunningAgent>();

  before(async () => {
    registry = await startRegistry({ heartbeatIntervalMs: 200 });
    gateway = await startGateway(registry.address);
    const created = await registry.store.createApiKey("grace");
    key = created.apiKey;
    ownerUserId = created.record.userId;
  });

  afterEach(async () => {
    for (const started of running) await stop(started);
  });

  after(async () => {
    await gateway.stop();
    await registry.stop();
  });

  /**
   * startAgent starts `infermesh agent --mesh … --upstream llm=<the simulator> FLAGS` in process (and a simulator on
   * 127.0.0.1 unless given one), and waits until the gateway routes to it.
   */
  const startAgent = async (flags: readonly string[], upstream?: Simulator): Promise<RunningAgent> => {
    const simulator = upstream ?? (await listeningSimulator("127.0.0.1"));
    const argv = ["--mesh", gateway.baseUrl, "--upstream", `llm=${simulator.url}`, "--shutdown-grace-ms", "100", ...flags];
    const config = parseAgentConfig(argv, { INFERMESH_API_KEY: key });
    const agent = createAgent({ config, log: createLogger("agent", "silent") });
    const started = { agent, simulator, providerId: "" };
    running.add(started);
    const { providerId } = await agent.listen();
    if (providerId === undefined) throw new Error("the agent did not attach");
    await waitFor(`${providerId} routable`, () => (gateway.gateway.table.provider(providerId)?.models.length ?? 0) > 0);
    return { ...started, providerId };
  };

  const stop = async (started: RunningAgent): Promise<void> => {
    running.delete(started);
    await started.agent.close();
    await started.simulator.close();
  };

  /** named is what the registry and the gateway say of a provider: its name and its owner. */
  const named = (providerId: string) => ({
    registry: pick(registry.server.table.get(providerId)),
    gateway: pick(gateway.gateway.table.provider(providerId)),
  });

  /** chatAnswered makes a chat call through the gateway and says whether it answered 200. */
  const chatAnswered = async (): Promise<boolean> => {
    const response = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 2 }),
    });
    await response.arrayBuffer();
    return response.status === 200;
  };

  it("is the machine's host name without --name, with an id that follows from the owner and that name", async () => {
    const { providerId } = await startAgent([]);
    const expected = { name: hostname(), ownerUserId };
    expect(providerId).to.equal(providerIdFor(ownerUserId, hostname()));
    expect(named(providerId)).to.deep.equal({ registry: expected, gateway: expected });
  });

  it("comes back under the same id after a restart against a model server on another address and port", async () => {
    const first = await startAgent([]);
    const firstInstance = registry.server.table.instanceId(first.providerId);
    const firstUpstream = new URL(first.simulator.url ?? "");
    await stop(first);
    await waitFor("the provider offline", () => registry.server.table.get(first.providerId)?.online === false);

    const second = await startAgent([], await simulatorElsewhere(firstUpstream));
    const secondUpstream = new URL(second.simulator.url ?? "");
    expect(secondUpstream.host, "the model server moved").not.to.equal(firstUpstream.host);
    expect(secondUpstream.port, "to another port").not.to.equal(firstUpstream.port);
    expect(second.providerId, "the same provider").to.equal(first.providerId);
    expect(registry.server.table.instanceId(second.providerId), "a new agent process").not.to.equal(firstInstance);
    const owned = registry.server.table.providers(true).filter((p) => p.ownerUserId === ownerUserId);
    expect(
      owned.map((p) => [p.id, p.online]),
      "one provider, not a second one beside the first",
    ).to.deep.equal([[first.providerId, true]]);

    expect(await chatAnswered(), "a chat routed to the restarted agent").to.equal(true);
    expect(second.simulator.requests.map((r) => r.path)).to.include("/v1/chat/completions");
  });

  it("is the name its owner chose with --name, whatever the host name", async () => {
    const chosen = "Grace's GPU box";
    const { providerId } = await startAgent(["--name", chosen]);
    const expected = { name: chosen, ownerUserId };
    expect(providerId).to.equal(providerIdFor(ownerUserId, chosen));
    expect(providerId).to.match(/^grace-s-gpu-box-[0-9a-f]{12}$/);
    expect(providerId).not.to.equal(providerIdFor(ownerUserId, hostname()));
    expect(named(providerId)).to.deep.equal({ registry: expected, gateway: expected });
  });
});

/** pick keeps what identifies a provider to people: its name and its owner. */
function pick(provider: { name: string; ownerUserId: string } | undefined) {
  return provider && { name: provider.name, ownerUserId: provider.ownerUserId };
}

async function listeningSimulator(host: string): Promise<Simulator> {
  const simulator = createSimulator({ models: [{ id: MODEL }] });
  await simulator.listen(0, host);
  return simulator;
}

/**
 * simulatorElsewhere listens on OTHER_LOOPBACK when this machine can (Linux can on all of 127/8; macOS only on
 * 127.0.0.1 unless told), else on 127.0.0.1, and never on the port of before: a port the system hands out may be the
 * same one again, on another address all the more.
 */
async function simulatorElsewhere(before: URL): Promise<Simulator> {
  const host = await listeningSimulator(OTHER_LOOPBACK).then(
    async (probe) => {
      await probe.close();
      return OTHER_LOOPBACK;
    },
    () => "127.0.0.1",
  );
  for (;;) {
    const simulator = await listeningSimulator(host);
    if (new URL(simulator.url ?? "").port !== before.port) return simulator;
    await simulator.close();
  }
}
