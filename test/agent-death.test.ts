import { expect } from "chai";
import { PING_INTERVAL_MS, SILENCE_LIMIT_MS } from "../services/shared/link/link-protocol.js";
import { createSimulator, type Simulator } from "../services/sim/simulator.js";
import { type CliProcess, spawnCli } from "./support/cli-process.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { startMesh } from "./support/mesh-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { waitFor } from "./support/wait-for.js";

// An agent that dies or freezes mid-stream, and a client that walks away: nothing hangs, nothing keeps running.

const MESSAGES = [{ role: "user", content: "a long answer please" }];
/** FROZEN_END_MS is the promise for a frozen agent: its in-flight calls end with the error frame within 5 s. */
const FROZEN_END_MS = 5_000;

/** StreamReader reads an SSE response as it arrives, remembering when it ended. */
class StreamReader {
  text = "";
  endedAtMs: number | undefined;
  constructor(response: Response) {
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) this.text += decoder.decode(chunk, { stream: true });
      } catch {
        this.text += "<reset>";
      }
      this.endedAtMs = Date.now();
    })();
  }
}

async function inFlight(gateway: GatewayFixture): Promise<number> {
  const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
  return [...metrics.matchAll(/^infermesh_gateway_requests_in_flight\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

describe("an agent that dies mid-stream", function () {
  this.timeout(60_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let simulator: Simulator;
  let agent: CliProcess;
  let key: string;

  beforeEach(async () => {
    // A TTL far beyond every wait below: the agent's link alone must end the streams on it.
    registry = await startRegistry({ heartbeatIntervalMs: 500, ttlMs: 60_000 });
    gateway = await startGateway(registry.address);
    simulator = createSimulator({ tokensPerSecond: 20 });
    await simulator.listen();
    key = await registry.keyFor("dana");
    agent = spawnCli(["agent", "--mesh", gateway.baseUrl, "--upstream", `${simulator.url}`], { INFERMESH_API_KEY: key });
    await agent.waitForLog("agent ready");
    await waitFor(
      "the agent's model at the gateway",
      () => [...gateway.gateway.table.providers()].some((p) => p.models.length > 0),
      10_000,
    );
  });

  afterEach(async () => {
    if (agent.child.exitCode === null && agent.child.signalCode === null) {
      agent.child.kill("SIGCONT");
      agent.child.kill("SIGKILL");
    }
    await agent.exited;
    await gateway.stop();
    await simulator.close();
    await registry.stop();
  });

  const openStream = async () => {
    const response = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "sim-llama", messages: MESSAGES, max_tokens: 400, stream: true }),
    });
    expect(response.status).to.equal(200);
    const reader = new StreamReader(response);
    await waitFor("the first tokens", () => reader.text.includes('"content":" '), 10_000);
    return reader;
  };

  const expectOneErrorFrame = (reader: StreamReader) => {
    const frames = reader.text.split("\n\n").filter(Boolean);
    const errors = frames.filter((f) => f.startsWith('data: {"error"'));
    expect(errors, reader.text.slice(-300)).to.have.length(1);
    expect(frames.at(-1)).to.equal(errors[0]);
    expect(reader.text).not.to.contain("[DONE]");
    expect(reader.text).not.to.contain("<reset>");
  };

  it("killed: the client gets one error frame and the stream closes within 1 s; in-flight returns to 0", async () => {
    const reader = await openStream();
    const killedAt = Date.now();
    agent.child.kill("SIGKILL");
    await waitFor("the stream to end", () => reader.endedAtMs, 5_000);
    expect((reader.endedAtMs as number) - killedAt).to.be.below(1_000);
    expectOneErrorFrame(reader);
    await waitFor("in-flight back to 0", async () => (await inFlight(gateway)) === 0, 5_000, 50);
  });

  it("frozen (SIGSTOP): the silent link ends the stream with one error frame within 5 s of the freeze", async () => {
    // The gateway looks at the link's silence once per ping tick, so it finds the freeze within 4.5 s: the rest of
    // the 5 s is the only slack a loaded machine gets.
    expect(SILENCE_LIMIT_MS + PING_INTERVAL_MS, "the design's detection bound").to.be.below(FROZEN_END_MS);
    const reader = await openStream();
    const stoppedAt = Date.now();
    agent.child.kill("SIGSTOP");
    await waitFor("the stream to end", () => reader.endedAtMs, 15_000);
    expect((reader.endedAtMs as number) - stoppedAt, "from the freeze to the stream's end").to.be.below(FROZEN_END_MS);
    expectOneErrorFrame(reader);
    await waitFor("in-flight back to 0", async () => (await inFlight(gateway)) === 0, 5_000, 50);
  });
});

describe("a client that walks away", function () {
  this.timeout(60_000);

  it("makes the model server see its request aborted quickly (median of 5 under 100 ms)", async () => {
    const mesh = await startMesh();
    try {
      const key = await mesh.registry.keyFor("erin");
      const { simulator } = await mesh.addAgent({ user: "erin", apiKey: key, sim: { tokensPerSecond: 20 } });
      const delays: number[] = [];
      for (let i = 0; i < 5; i++) {
        const controller = new AbortController();
        const response = await fetch(`${mesh.gateway.baseUrl}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ model: "sim-llama", messages: MESSAGES, max_tokens: 400, stream: true }),
          signal: controller.signal,
        });
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        await reader.read();
        const abortedAt = Date.now();
        controller.abort();
        const seen = await simulator.waitForAbort((a) => a.atMs >= abortedAt, 2_000);
        delays.push(seen.atMs - abortedAt);
      }
      delays.sort((a, b) => a - b);
      expect(delays[2], `delays ${delays.join(", ")} ms`).to.be.below(100);
    } finally {
      await mesh.stop();
    }
  });
});
