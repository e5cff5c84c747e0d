import { expect } from "chai";
import OpenAI from "openai";
import { expectedCompletionText } from "../services/sim/simulator.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

// The registry is the control plane, not the data plane: while it is down, the mesh keeps answering.

const MESSAGES = [{ role: "user" as const, content: "hi" }];
/** ANSWER is what the simulator says to MESSAGES in two tokens, whichever way the request went. */
const ANSWER = expectedCompletionText(MESSAGES, 2);

describe("a registry outage", function () {
  this.timeout(60_000);
  let mesh: Mesh;

  before(async () => {
    mesh = await startMesh({ heartbeatIntervalMs: 200 });
  });

  after(() => mesh.stop());

  it("keeps the gateway routing on its table and the agent's link up, then the watch and the agent's registration come back by themselves", async () => {
    const key = await mesh.registry.keyFor("erin");
    const erin = await mesh.addAgent({ user: "erin", apiKey: key });
    const client = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: key, maxRetries: 0 });
    const ask = async () =>
      (await client.chat.completions.create({ model: "sim-llama", messages: MESSAGES, max_tokens: 2 })).choices[0]?.message.content;
    expect(await ask()).to.equal(ANSWER);

    await mesh.registry.outage();
    await waitFor("the gateway to notice", () => !mesh.gateway.gateway.registryLink.connected, 10_000);
    for (let i = 0; i < 3; i++) expect(await ask(), `answer ${i + 1} during the outage`).to.equal(ANSWER);
    // The heartbeats the gateway relays fail while the registry is away; that is no reason to drop the agent's link.
    expect(erin.agent.connected, "the agent's link during the outage").to.equal(true);
    expect(mesh.gateway.gateway.links.attached(erin.providerId), "the gateway's end of the link").to.equal(true);

    await mesh.registry.restart();
    await waitFor("the watch to reconnect", () => mesh.gateway.gateway.registryLink.connected, 15_000, 20);
    await waitFor("the agent to re-register", () => mesh.registry.server.table.get(erin.providerId)?.online === true, 15_000, 20);
    // The registry learns again where the agent is attached: from the relayed heartbeats, not from the agent.
    const record = mesh.registry.server.table.get(erin.providerId);
    expect({ gatewayId: record?.gatewayId, endpoint: record?.endpoint }).to.deep.equal({
      gatewayId: mesh.gateway.gateway.settings.gatewayId,
      endpoint: mesh.gateway.grpcAddress,
    });
    await waitFor("the gateway to route to it again", () => mesh.gateway.gateway.table.provider(erin.providerId) !== undefined, 15_000, 20);
    expect(await ask()).to.equal(ANSWER);
  });
});
