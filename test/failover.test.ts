import { expect } from "chai";
import { ErrorKind } from "../gen/infermesh/v1/inference_pb.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { registerScriptedAgent, type Script, type ScriptedAgent, startScriptedAgent } from "./support/scripted-agent.js";
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

  const heartbeat = (id: string, agent: { endpoint: string; token: string }) =>
    registerScriptedAgent(registry.address, key, id, agent, [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }]);

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
    a = await startScriptedAgent("token-a-0123456789abcdef", ok("a"));
    b = await startScriptedAgent("token-b-0123456789abcdef", ok("b"));
    await heartbeat("a", a);
    await heartbeat("b", b);
    gateway = await startGateway(registry.address, { circuit: { failureThreshold: 2, cooldownMs: 300 } });
    await waitFor("both providers", () => gateway.gateway.table.provider("a") && gateway.gateway.table.provider("b"));
  });

  afterEach(async () => {
    await gateway.stop();
    await a.close();
    await b.close();
    await registry.stop();
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

  it("fails over when a provider is unreachable, and skips it afterwards while its circuit is open", async () => {
    await a.close();
    const bodies = [];
    for (let i = 0; i < 6; i++) bodies.push((await chat()).body);
    expect(new Set(bodies)).to.deep.equal(new Set(['{"from":"b"}']));
    expect(b.calls).to.have.length(6);
    expect(gateway.gateway.table.provider("a")).to.exist;
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
