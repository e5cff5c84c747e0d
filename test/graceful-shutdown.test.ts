import { expect } from "chai";
import { type Agent, createAgent } from "../services/agent/agent.js";
import { resolveAgentConfig } from "../services/agent/agent-config.js";
import { createLogger } from "../services/shared/logger.js";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { START_DEADLINE_MS, spawnCli } from "./support/cli-process.js";
import { MESH_TOKEN, type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { waitFor } from "./support/wait-for.js";

// SIGTERM on a gateway process in the middle of a stream: it stops taking new work, finishes the stream on the
// agent's link, then closes the link, and exits 0.

describe("a gateway stopped with SIGTERM", function () {
  this.timeout(2 * START_DEADLINE_MS);
  let registry: RegistryFixture;
  let simulator: Simulator;
  let agent: Agent;

  before(async () => {
    registry = await startRegistry();
    simulator = createSimulator({ tokensPerSecond: 20 });
    await simulator.listen();
  });

  after(async () => {
    await agent?.close();
    await simulator.close();
    await registry.stop();
  });

  it("finishes the stream in flight, refuses new connections, and exits 0", async () => {
    const key = await registry.keyFor("gina");
    const gateway = spawnCli(["gateway", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--registry", registry.address], {
      INFERMESH_MESH_TOKEN: MESH_TOKEN,
    });
    try {
      const ready = await gateway.waitForLog("gateway ready");
      const baseUrl = `http://${ready.listen as string}`;
      agent = createAgent({
        config: resolveAgentConfig({
          mesh: baseUrl,
          apiKey: key,
          upstreams: [{ type: "llm", url: simulator.url as string }],
          logLevel: "silent",
          shutdownGraceMs: 500,
        }),
        log: createLogger("agent", "silent"),
      });
      const { providerId } = await agent.listen();
      expect(providerId, "attached to the gateway").to.be.a("string");
      const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
      await waitFor(
        "the model at the gateway",
        async () => ((await (await fetch(`${baseUrl}/v1/models`, { headers })).json()) as { data: unknown[] }).data.length > 0,
        10_000,
        50,
      );
      const response = await fetch(`${baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers,
        body: JSON.stringify({ model: "sim-llama", messages: [{ role: "user", content: "hi" }], max_tokens: 20, stream: true }),
      });
      const reader = (response.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      gateway.child.kill("SIGTERM");
      await gateway.waitForLog("shutting down");
      const refused = await fetch(`${baseUrl}/v1/models`, { headers }).then(
        (r) => r.status,
        () => "refused",
      );
      expect(refused, "a new request").to.be.oneOf(["refused", 503]);
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
      expect(rest.slice(-200), "the stream's last bytes").to.match(/data: \[DONE\]\n\n$/);
      const exit = await gateway.exited;
      expect(exit.code).to.equal(0);
      expect(exit.stderr).to.contain('"msg":"gateway stopped"');
      // The link stayed up while the stream on it finished; it closed with the gateway, which took the agent offline.
      expect(exit.stderr).to.contain('"msg":"agent detached"');
      await waitFor("the agent to notice", () => !agent.connected, 10_000, 20);
      await waitFor(
        "the agent offline in the registry",
        () => registry.server.table.get(providerId as string)?.online === false,
        5_000,
        20,
      );
    } finally {
      if (gateway.child.exitCode === null) gateway.child.kill("SIGKILL");
      await gateway.exited;
    }
  });
});
