import { expect } from "chai";
import OpenAI, { type APIError } from "openai";
import { PING_INTERVAL_MS, SILENCE_LIMIT_MS } from "../services/shared/link/link-protocol.js";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { type CliProcess, spawnCli } from "./support/cli-process.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { waitFor } from "./support/wait-for.js";

// A real `infermesh agent` process, attached to the gateway by its one link. The registry's TTL is far away: the
// link is what tells the mesh that the agent is gone, at once when its socket closes, within the silence limit when
// it freezes.

/** TTL_MS is far longer than any wait below, so that only the link can take the provider out of routing. */
const TTL_MS = 60_000;
/** SLACK_MS is a loaded 2-core machine's allowance on top of the design's figure. */
const SLACK_MS = 1_500;
/** FROZEN_GONE_MS is the promise for a frozen agent: the mesh drops it within 5 s of the freeze. */
const FROZEN_GONE_MS = 5_000;

describe("an agent process attached to a gateway", function () {
  this.timeout(90_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let simulator: Simulator;
  let agent: CliProcess | undefined;

  before(async () => {
    registry = await startRegistry({ heartbeatIntervalMs: 200, ttlMs: TTL_MS });
    gateway = await startGateway(registry.address);
    simulator = createSimulator({ models: [{ id: "doomed-model" }] });
    await simulator.listen();
  });

  afterEach(async () => {
    if (agent && agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill("SIGCONT");
      agent.child.kill("SIGKILL");
    }
    await agent?.exited;
    agent = undefined;
  });

  after(async () => {
    await gateway.stop();
    await simulator.close();
    await registry.stop();
  });

  /** attach starts `infermesh agent --mesh <the gateway's base URL>` and waits for its model on /v1/models. */
  const attach = async (user: string) => {
    const key = await registry.keyFor(user);
    const client = new OpenAI({ baseURL: `${gateway.baseUrl}/v1`, apiKey: key, maxRetries: 0 });
    // The OpenAI base URL, /v1 and all, as a user copies it: the agent dials the same port.
    const started = spawnCli(["agent", "--mesh", `${gateway.baseUrl}/v1`, "--upstream", `llm=${simulator.url}`, "--id", `${user}-box`], {
      INFERMESH_API_KEY: key,
    });
    agent = started;
    await started.waitForLog("agent ready");
    await waitFor(
      "the model on /v1/models",
      async () => (await client.models.list()).data.some((m) => m.id === "doomed-model"),
      10_000,
      50,
    );
    return { key, client, agent: started, providerId: `${user}-box` };
  };

  it("that dies (SIGKILL) leaves /v1/models at once, not after the TTL, and chat then answers 404 no_provider", async () => {
    const { key, client, agent: killed, providerId } = await attach("carol");
    const answer = await client.chat.completions.create({
      model: "doomed-model",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    expect(answer.choices[0]?.message.content).to.be.a("string").and.not.empty;
    expect(registry.server.table.get(providerId)?.gatewayId, "the registry's record of where it is attached").to.equal(
      gateway.gateway.settings.gatewayId,
    );

    killed.child.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor("the model to leave /v1/models", async () => (await client.models.list()).data.length === 0, 10_000, 50);
    const goneAfterMs = Date.now() - killedAt;
    expect(goneAfterMs, "the link's close takes it offline, far within the TTL").to.be.below(SLACK_MS);
    expect(registry.server.table.get(providerId)?.online, "offline in the registry too").to.equal(false);
    const error = await client.chat.completions
      .create({ model: "doomed-model", messages: [{ role: "user", content: "hi" }] })
      .catch((e: unknown) => e);
    expect((error as APIError).status).to.equal(404);
    expect((error as APIError).type).to.equal("no_provider");
    expect(killed.stderr(), "the API key is never logged").not.to.contain(key);
  });

  it("that freezes (SIGSTOP) leaves /v1/models within 5 s, and is back by itself once continued", async () => {
    const { client, agent: frozen, providerId } = await attach("dora");
    // Detection takes at most the silence limit plus one ping tick (4.5 s); the 5 s promise leaves the rest as slack.
    expect(SILENCE_LIMIT_MS + PING_INTERVAL_MS, "the design's detection bound").to.be.below(FROZEN_GONE_MS);
    const stoppedAt = Date.now();
    frozen.child.kill("SIGSTOP");
    await waitFor("the model to leave /v1/models", async () => (await client.models.list()).data.length === 0, 15_000, 50);
    expect(Date.now() - stoppedAt, "the gateway drops a silent link within 5 s of the freeze").to.be.below(FROZEN_GONE_MS);
    expect(gateway.gateway.links.attached(providerId)).to.equal(false);

    frozen.child.kill("SIGCONT");
    const continuedAt = Date.now();
    // The agent finds its link dead (closed by the gateway, or silent from its own point of view) and dials again.
    await waitFor(
      "the model back on /v1/models",
      async () => {
        const { exitCode } = frozen.child;
        if (exitCode !== null)
          throw new Error(`the agent exited (code ${exitCode}) instead of dialling again:\n${frozen.stderr().slice(-600)}`);
        return (await client.models.list()).data.some((m) => m.id === "doomed-model");
      },
      15_000,
      50,
    );
    expect(Date.now() - continuedAt, "a dial again with backoff capped at 3 s").to.be.below(SILENCE_LIMIT_MS + 3_000 + SLACK_MS);
    const answer = await client.chat.completions.create({
      model: "doomed-model",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
    });
    expect(answer.choices[0]?.message.content).to.be.a("string").and.not.empty;
  });
});
