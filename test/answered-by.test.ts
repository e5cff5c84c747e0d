import { Writable } from "node:stream";
import type * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { pino } from "pino";
import { ErrorKind } from "../gen/infermesh/v1/inference_pb.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { bearer, stockClient } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// Blame and credit go to the provider that earned them: a client's bad input never counts against a provider's
// circuit breaker, whichever face it came in by, and metrics and logs name the provider and model that answered,
// not the first one tried.

const encode = (text: string) => new TextEncoder().encode(text);

const answers = (body: string): Script =>
  async function* () {
    yield { part: { part: { case: "head", value: { status: 200, contentType: "application/json" } } } };
    yield { part: { part: { case: "data", value: encode(body) } } };
    yield { part: { part: { case: "trailer", value: { usage: { promptTokens: 2, completionTokens: 3, totalTokens: 5 } } } } };
  };

const upstreamDown: Script = async function* () {
  yield {
    part: {
      part: { case: "error", value: { kind: ErrorKind.UPSTREAM, type: "upstream_error", message: "connection refused", httpStatus: 502 } },
    },
  };
};

interface StockStatus {
  readonly code: number;
  readonly details: string;
}

describe("which provider answered: blame and credit", function () {
  this.timeout(30_000);
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let agents: ScriptedAgent[];
  let key: string;
  const logLines: Record<string, unknown>[] = [];

  /** attach attaches a scripted agent as alice's provider id, serving models and reporting load. */
  const attach = async (id: string, script: Script, models: object[], load = 0) => {
    const agent = await attachScriptedAgent(gateway.baseUrl, key, id, models, script, { load: { inFlight: load } });
    agents.push(agent);
    return agent;
  };

  /** inferOverGrpc calls the gateway's InferenceService.Infer and resolves its status. */
  const inferOverGrpc = (call: object): Promise<StockStatus> => {
    const client = stockClient("InferenceService", gateway.grpcAddress);
    return new Promise((resolve) => {
      const stream = (client.infer as (request: object, metadata: grpc.Metadata) => grpc.ClientReadableStream<unknown>).call(
        client,
        { call },
        bearer(key),
      );
      stream.on("data", () => {});
      stream.on("error", () => {});
      stream.on("status", (status: StockStatus) => {
        client.close();
        resolve(status);
      });
    });
  };

  const post = (path: string, body: string | FormData, headers: Record<string, string> = { "content-type": "application/json" }) =>
    fetch(`${gateway.baseUrl}${path}`, { method: "POST", headers: { authorization: `Bearer ${key}`, ...headers }, body });

  beforeEach(async () => {
    logLines.length = 0;
    registry = await startRegistry();
    key = await registry.keyFor("alice");
    agents = [];
    const log = pino(
      { level: "debug" },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logLines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
          done();
        },
      }),
    );
    gateway = await startGateway(registry.address, { log, circuit: { failureThreshold: 2, cooldownMs: 60_000 } });
  });

  afterEach(async () => {
    for (const agent of agents) await agent.close();
    await gateway?.stop();
    await registry?.stop();
  });

  it("never counts a malformed gRPC call against a provider, even for a model named in another case", async () => {
    const a = await attach("a", answers('{"from":"a"}'), [{ id: "whisper-m", serviceType: "SERVICE_TYPE_STT" }]);
    await waitFor("provider a", () => gateway.gateway.table.provider("a"));
    const audio = [{ role: "MEDIA_ROLE_AUDIO", filename: "a.wav", contentType: "audio/wav", data: Buffer.from("RIFF") }];
    const malformed = [
      { operation: "OPERATION_TRANSCRIPTION", model: "WHISPER-M", body: Buffer.from("model=x"), media: audio },
      { operation: "OPERATION_TRANSCRIPTION", model: "WHISPER-M", body: Buffer.from('{"temperature":0}'), media: audio },
      { operation: "OPERATION_TRANSCRIPTION", model: "Whisper-M", body: Buffer.from("[]"), media: audio },
      { operation: "OPERATION_TRANSCRIPTION", model: "whisper-M", body: Buffer.alloc(0), media: audio },
    ];
    for (const call of malformed) expect((await inferOverGrpc(call)).code, JSON.stringify(call.body.toString())).to.equal(3);
    expect(a.calls, "no malformed call reaches the agent").to.have.length(0);

    // Were a's circuit open, every call would now go to b.
    const b = await attach("b", answers('{"from":"b"}'), [{ id: "whisper-m", serviceType: "SERVICE_TYPE_STT" }]);
    await waitFor("provider b", () => gateway.gateway.table.provider("b"));
    const valid = { operation: "OPERATION_TRANSCRIPTION", model: "WHISPER-M", body: Buffer.from('{"model":"WHISPER-M"}'), media: audio };
    for (let i = 0; i < 4; i++) expect((await inferOverGrpc(valid)).code).to.equal(0);
    expect([a.calls.length, b.calls.length]).to.deep.equal([2, 2]);
    expect(a.calls[0]?.model, "the provider gets its own name for the model").to.equal("whisper-m");
  });

  it("never counts a malformed HTTP request against a provider", async () => {
    const a = await attach("a", answers('{"from":"a"}'), [
      { id: "m", serviceType: "SERVICE_TYPE_LLM" },
      { id: "whisper-m", serviceType: "SERVICE_TYPE_STT" },
    ]);
    await waitFor("provider a", () => gateway.gateway.table.provider("a"));
    const form = new FormData();
    form.set("model", "WHISPER-M");
    form.set("response_format", "mp4");
    form.set("file", new Blob([Buffer.from("RIFF")], { type: "audio/wav" }), "a.wav");
    const statuses = [
      (await post("/v1/chat/completions", JSON.stringify({ model: "M", messages: [{ role: "user", content: "hi" }], n: 0 }))).status,
      (await post("/v1/chat/completions", JSON.stringify({ model: "M", messages: [] }))).status,
      (await post("/v1/chat/completions", '{"model":"M","messages":[')).status,
      (await post("/v1/audio/transcriptions", form, {})).status,
    ];
    expect(statuses).to.deep.equal([400, 400, 400, 400]);
    expect(a.calls).to.have.length(0);

    const b = await attach("b", answers('{"from":"b"}'), [{ id: "m", serviceType: "SERVICE_TYPE_LLM" }]);
    await waitFor("provider b", () => gateway.gateway.table.provider("b"));
    for (let i = 0; i < 4; i++) {
      expect(
        (await post("/v1/chat/completions", JSON.stringify({ model: "M", messages: [{ role: "user", content: "hi" }] }))).status,
      ).to.equal(200);
    }
    expect([a.calls.length, b.calls.length]).to.deep.equal([2, 2]);
  });

  it("names the provider and model that answered after a failover in metrics and logs, not the first one tried", async () => {
    // b reports load, so a is tried first; a serves the model as 'Echo', b as 'echo'.
    const a = await attach("a", upstreamDown, [{ id: "Echo", serviceType: "SERVICE_TYPE_LLM" }]);
    const b = await attach("b", answers('{"from":"b"}'), [{ id: "echo", serviceType: "SERVICE_TYPE_LLM" }], 5);
    await waitFor("both providers", () => gateway.gateway.table.provider("a") && gateway.gateway.table.provider("b"));

    const response = await post("/v1/chat/completions", JSON.stringify({ model: "ECHO", messages: [{ role: "user", content: "hi" }] }));
    expect(response.status).to.equal(200);
    expect(await response.json()).to.deep.equal({ from: "b" });
    expect([a.calls[0]?.model, b.calls[0]?.model], "tried a first, then b").to.deep.equal(["Echo", "echo"]);

    const metrics = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    expect(metrics).to.match(/^infermesh_gateway_requests_total\{route="\/v1\/chat\/completions",model="echo",status_class="2xx"\} 1$/m);
    expect(metrics).to.match(/^infermesh_gateway_time_to_first_token_seconds_count\{operation="chat_completion",model="echo"\} 1$/m);
    expect(metrics).to.match(/^infermesh_gateway_tokens_total\{operation="chat_completion",model="echo",type="output"\} 3$/m);
    expect(metrics, "the model of the provider that failed is not credited").not.to.contain('model="Echo"');

    const answered = await waitFor("the request's log line", () => logLines.find((line) => line.msg === "inference request answered"));
    expect(answered).to.include({ provider: "b", model: "echo", status: 200, route: "/v1/chat/completions" });
  });
});
