import { expect } from "chai";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

// A request deadline ends the request in every phase: queued at the agent, waiting for the first token, streaming,
// and non-streamed; the model server's request is aborted each time.

describe("deadlines in every phase", function () {
  this.timeout(60_000);
  const REQUEST_MS = 400;
  const STREAM_MS = 600;
  let mesh: Mesh;
  let key: string;
  let agent: MeshAgent;

  before(async () => {
    mesh = await startMesh({}, { requestTimeoutMs: REQUEST_MS, streamTimeoutMs: STREAM_MS });
    key = await mesh.registry.keyFor("frank");
    agent = await mesh.addAgent({ user: "frank", apiKey: key, settings: { maxConcurrency: 1, maxQueue: 4 } });
  });

  after(() => mesh.stop());

  beforeEach(() => agent.simulator.reset());

  const post = (body: Record<string, unknown>) =>
    fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "sim-llama", messages: [{ role: "user", content: "hi" }], ...body }),
    });

  it("non-streamed, waiting for the first token: 504 timeout, and the model server's request is aborted", async () => {
    const started = Date.now();
    const response = await post({ sim: { fail: "stall" } });
    expect(response.status).to.equal(504);
    expect(((await response.json()) as { error: { type: string } }).error.type).to.equal("timeout");
    expect(Date.now() - started).to.be.at.least(REQUEST_MS - 50);
    await agent.simulator.waitForAbort(() => true, 2_000);
  });

  it("streamed, waiting for the first token: 504 before any byte", async () => {
    const response = await post({ stream: true, sim: { fail: "stall" } });
    expect(response.status).to.equal(504);
    await agent.simulator.waitForAbort(() => true, 2_000);
  });

  it("streaming past the deadline: one timeout error frame, then the end", async () => {
    const response = await post({ stream: true, max_tokens: 200, sim: { tokens_per_second: 20 } });
    expect(response.status).to.equal(200);
    const text = await response.text();
    const frames = text.split("\n\n").filter(Boolean);
    expect(frames.length).to.be.at.least(3);
    expect(frames.at(-1)).to.match(/^data: \{"error":\{"message":.*"type":"timeout"/);
    expect(text).not.to.contain("[DONE]");
    await agent.simulator.waitForAbort(() => true, 2_000);
  });

  it("queued at the agent behind a busy slot: 504, and the queue empties", async () => {
    // The busy request streams, so it holds the slot past the queued one's shorter deadline.
    const busy = post({ stream: true, sim: { fail: "stall" } });
    await waitFor("the slot to be taken", () => agent.agent.load().inFlight === 1, 5_000);
    const queued = await post({});
    expect(queued.status).to.equal(504);
    expect((await busy).status).to.equal(504);
    await waitFor("the agent to be idle", () => agent.agent.load().inFlight === 0 && agent.agent.load().queued === 0, 5_000);
    expect(agent.simulator.requestCounts.get("/v1/chat/completions"), "the queued request never reached the server").to.equal(1);
  });
});
