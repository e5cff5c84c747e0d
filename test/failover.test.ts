import { Code, ConnectError } from "@connectrpc/connect";
import { expect } from "chai";
import { ErrorKind } from "../gen/infermesh/v1/inference_pb.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { waitFor } from "./support/wait-for.js";

// Failover before the first byte, and passive health: two providers of one user serve the same model.

const encode = (text: string) => new TextEncoder().encode(text);

const ok = (name: string): Script =>
  async function* () {
    yield { part: { part: { case: "head", value: { status: 200, contentType: "application/json" } } } };
    yield { part: { part: { case: "data", value: encode(`{"from":"${name}"}`) } } };
    yield { part: { part: { case: "trailer", value: { finishReasons: ["stop"] } } } };
  };

const upstreamDown: Script = async function* () {
  yield {
    part: {
      part: { case: "error", value: { kind: ErrorKind.UPSTREAM, type: "upstream_error", message: "connection refused", httpStatus: 502 } },
    },
  };
};

describe("failover and passive health", function () {
  this.timeout(30_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let a: ScriptedAgent;
  let b: ScriptedAgent;
  let key: string;

  const attach = (id: string) => attachScriptedAgent(gateway.baseUrl, key, id, [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }], ok(id));

  const chat = async (stream = false) => {
    const response = await fetch(`${gateway.baseUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], stream }),
    });
    return { status: response.status, body: await response.text() };
  };

  beforeEach(async () => {
    registry = await startRegistry();
    key = await registry.keyFor("alice");
    gateway = await startGateway(registry.address, { circuit: { failureThreshold: 2, cooldownMs: 60_000 } });
    a = await attach("a");
    b = await attach("b");
    await waitFor("both providers", () => gateway.gateway.table.provider("a") && gateway.gateway.table.provider("b"));
  });

  afterEach(async () => {
    // A setup that failed part way leaves nothing running behind.
    await a?.close();
    await b?.close();
    await gateway?.stop();
    await registry?.stop();
  });

  it("tries the other provider when the first one's model server fails before the first byte", async () => {
    a.script = upstreamDown;
    // Two requests: round robin makes at least one of them start at a, whose 5xx must go to b.
    const results = [await chat(), await chat()];
    expect(results).to.deep.equal([
      { status: 200, body: '{"from":"b"}' },
      { status: 200, body: '{"from":"b"}' },
    ]);
    expect(a.calls.length, "a was tried").to.be.at.least(1);
    expect(b.calls).to.have.length(2);
  });

  it("answers the last failure when the other provider fails too", async () => {
    a.script = b.script = upstreamDown;
    const result = await chat();
    expect(result.status).to.equal(502);
    expect(JSON.parse(result.body)).to.deep.equal({
      error: { message: "connection refused", type: "upstream_error", param: null, code: null },
    });
    expect(a.calls.length + b.calls.length, "one try and one failover").to.equal(2);
  });

  it("fails over when a provider is unavailable, and skips it afterwards while its circuit is open", async () => {
    // biome-ignore lint/correctness/useYield: a call that fails before its first part yields nothing
    a.script = async function* () {
      throw new ConnectError("the agent cannot take calls", Code.Unavailable);
    };
    const bodies = [];
    for (let i = 0; i < 6; i++) bodies.push((await chat()).body);
    expect(new Set(bodies)).to.deep.equal(new Set(['{"from":"b"}']));
    expect(b.calls).to.have.length(6);
    expect(a.calls, "a's circuit opened after its second failure in a row").to.have.length(2);
    expect(gateway.gateway.table.provider("a")).to.exist;
  });

  it("fails over when a provider's link drops before the first byte, and routes nothing more to it", async () => {
    a.script = async function* (_call, signal) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    };
    // b reports load, so that the first request goes to a.
    await b.heartbeat(undefined, { load: { inFlight: 5 } });
    await waitFor("b's load in the table", () => gateway.gateway.table.provider("b")?.load?.inFlight === 5);
    const pending = chat();
    await waitFor("a's call", () => a.calls.length === 1);
    await a.close();
    expect(await pending).to.deep.equal({ status: 200, body: '{"from":"b"}' });
    expect(a.cancelled, "the agent's call ended with its link").to.deep.equal([a.calls[0]?.requestId]);

    const after = [await chat(), await chat()];
    expect(after).to.deep.equal([
      { status: 200, body: '{"from":"b"}' },
      { status: 200, body: '{"from":"b"}' },
    ]);
    expect(a.calls, "nothing more went down a's closed link").to.have.length(1);
    await waitFor("a to go offline in the gateway's table", () => gateway.gateway.table.provider("a") === undefined);
  });

  it("never fails over after the first byte, nor on a 4xx", async () => {
    a.script = b.script = async function* () {
      yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
      yield { part: { part: { case: "event", value: { data: encode('{"n":1}') } } } };
      yield {
        part: { part: { case: "error", value: { kind: ErrorKind.UPSTREAM, type: "upstream_error", message: "died", httpStatus: 502 } } },
      };
    };
    const streamed = await chat(true);
    expect(streamed.body).to.contain('data: {"n":1}').and.to.contain('"type":"upstream_error"');
    expect(a.calls.length + b.calls.length).to.equal(1);

    a.calls.length = 0;
    b.calls.length = 0;
    a.script = b.script = async function* () {
      yield { part: { part: { case: "error", value: { type: "invalid_request_error", message: "bad", httpStatus: 400 } } } };
    };
    const refused = await chat();
    expect(refused.status).to.equal(400);
    expect(a.calls.length + b.calls.length).to.equal(1);
  });

  it("still tries a provider when every circuit is open, rather than refuse", async () => {
    a.script = b.script = upstreamDown;
    for (let i = 0; i < 3; i++) await chat();
    const before = a.calls.length + b.calls.length;
    a.script = b.script = ok("any");
    const answered = await chat();
    expect(answered.status).to.equal(200);
    expect(a.calls.length + b.calls.length).to.equal(before + 1);
  });
});
