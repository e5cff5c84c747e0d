import { expect } from "chai";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

describe("a local model server that stops answering", function () {
  this.timeout(30_000);
  let mesh: Mesh;
  let key: string;
  let simulator: Simulator;

  beforeEach(async () => {
    mesh = await startMesh();
    key = await mesh.registry.keyFor("alice");
  });

  afterEach(async () => {
    await mesh.stop();
    await simulator?.close();
  });

  const chat = () =>
    fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "home-llm", messages: [{ role: "user", content: "hi" }] }),
    });

  it("takes its models out of routing at once, not at the next discovery, and brings them back when it answers", async () => {
    simulator = createSimulator({ models: [{ id: "home-llm" }] });
    const { url } = await simulator.listen();
    const port = Number(new URL(url).port);
    // Discovery every 10 minutes: only the failed call can tell the agent the server is gone.
    const { providerId } = await mesh.addAgent({
      user: "alice",
      apiKey: key,
      upstreamUrl: url,
      settings: { discoveryIntervalMs: 600_000 },
    });
    expect((await chat()).status).to.equal(200);

    await simulator.close();
    const failedAt = Date.now();
    expect((await chat()).status).to.equal(502);
    await waitFor(
      "the model out of the gateway's table",
      () => mesh.gateway.gateway.table.provider(providerId)?.models.length === 0,
      2_000,
    );
    expect(Date.now() - failedAt).to.be.lessThan(2_000);
    const next = await chat();
    expect(next.status).to.equal(404);

    simulator = createSimulator({ models: [{ id: "home-llm" }] });
    await simulator.listen(port);
    await waitFor(
      "the model back in the gateway's table",
      () => mesh.gateway.gateway.table.provider(providerId)?.models.length === 1,
      10_000,
    );
    expect((await chat()).status).to.equal(200);
  });
});
