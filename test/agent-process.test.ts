import { expect } from "chai";
import OpenAI, { type APIError } from "openai";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { spawnCli } from "./support/cli-process.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { waitFor } from "./support/wait-for.js";

// A real `infermesh agent` process, killed without warning: the registry's TTL is all that tells the mesh.

describe("an agent process that dies", function () {
  this.timeout(60_000);
  const TTL_MS = 600;
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let simulator: Simulator;

  before(async () => {
    registry = await startRegistry({ heartbeatIntervalMs: 200, ttlMs: TTL_MS });
    gateway = await startGateway(registry.address);
    simulator = createSimulator({ models: [{ id: "doomed-model" }] });
    await simulator.listen();
  });

  after(async () => {
    await gateway.stop();
    await simulator.close();
    await registry.stop();
  });

  it("leaves /v1/models within the TTL, and chat then answers 404 no_provider", async () => {
    const key = await registry.keyFor("carol");
    const agent = spawnCli([
      "agent",
      "--registry",
      `http://${registry.address}`,
      "--api-key",
      key,
      "--listen",
      "127.0.0.1:0",
      "--upstream",
      `llm=${simulator.url}`,
    ]);
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: key, maxRetries: 0 });
    try {
      await agent.waitForLog("agent ready");
      await waitFor(
        "the model on /v1/models",
        async () => (await client.models.list()).data.some((m) => m.id === "doomed-model"),
        10_000,
        50,
      );
      const answer = await client.chat.completions.create({
        model: "doomed-model",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 2,
      });
      expect(answer.choices[0]?.message.content).to.be.a("string").and.not.empty;

      agent.child.kill("SIGKILL");
      const killedAt = Date.now();
      await waitFor("the model to leave /v1/models", async () => (await client.models.list()).data.length === 0, 10_000, 50);
      const goneAfterMs = Date.now() - killedAt;
      expect(goneAfterMs, "within the TTL plus a loaded machine's slack").to.be.below(TTL_MS + 3_000);
      const error = await client.chat.completions
        .create({ model: "doomed-model", messages: [{ role: "user", content: "hi" }] })
        .catch((e: unknown) => e);
      expect((error as APIError).status).to.equal(404);
      expect((error as APIError).type).to.equal("no_provider");
      expect(agent.stderr(), "the API key is never logged").not.to.contain(key);
    } finally {
      if (agent.child.exitCode === null) agent.child.kill("SIGKILL");
      await agent.exited;
    }
  });
});
