import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { Operation } from "../gen/infermesh/v1/inference_pb.js";
import { type GatewayFixture, startGateway } from "./support/gateway-fixture.js";
import { type RegistryFixture, startRegistry } from "./support/registry-fixture.js";
import { attachScriptedAgent, type Script, type ScriptedAgent } from "./support/scripted-agent.js";
import { bearer, stockClient } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// The gateway against a scripted agent (a test double of a real agent, attached over its link): the gateway's own
// behaviour, with exact control of what the provider sends. End-to-end runs with real agents live in mesh.test.ts.

const encode = (text: string) => new TextEncoder().encode(text);

const jsonAnswer = (body: string): Script =>
  async function* () {
    yield { part: { part: { case: "head", value: { status: 200, contentType: "application/json; charset=utf-8" } } } };
    yield { part: { part: { case: "data", value: encode(body) } } };
    yield { part: { part: { case: "trailer", value: { usage: { promptTokens: 3, completionTokens: 5, totalTokens: 8 } } } } };
  };

const eventStream = (events: string[], after?: Script): Script =>
  async function* (call, signal) {
    yield { part: { part: { case: "head", value: { status: 200, contentType: "text/event-stream" } } } };
    for (const data of events) yield { part: { part: { case: "event", value: { data: encode(data) } } } };
    if (after) yield* after(call, signal);
  };

describe("gateway (HTTP façade) against a scripted agent", () => {
  let registry: RegistryFixture;
  let gateway: GatewayFixture;
  let agent: ScriptedAgent;
  let aliceKey: string;

  const post = (path: string, body: unknown, key: string = aliceKey, headers: Record<string, string> = {}) =>
    fetch(`${gateway.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  before(async () => {
    registry = await startRegistry();
    aliceKey = await registry.keyFor("alice");
    gateway = await startGateway(registry.address, { keepaliveMs: 40 });
    agent = await attachScriptedAgent(
      gateway.baseUrl,
      aliceKey,
      "alice-agent",
      [
        { id: "Llama-3", serviceType: "SERVICE_TYPE_LLM", supportedFeatures: ["tools"], contextLength: 8192, engine: "llamacpp" },
        { id: "kokoro", serviceType: "SERVICE_TYPE_TTS" },
      ],
      jsonAnswer("{}"),
      { name: "alice's box" },
    );
    await waitFor("the provider in the gateway's table", () => gateway.gateway.table.provider("alice-agent"));
  });

  after(async () => {
    // A setup that failed part way leaves nothing running behind.
    await agent?.close();
    await gateway?.stop();
    await registry?.stop();
  });

  beforeEach(() => {
    agent.calls.length = 0;
    agent.script = jsonAnswer("{}");
  });

  it("answers 401 in OpenAI's envelope without a key and with a bad key", async () => {
    for (const key of ["", "im_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]) {
      const response = await post("/v1/chat/completions", { model: "Llama-3", messages: [] }, key);
      expect(response.status).to.equal(401);
      expect(response.headers.get("content-type")).to.match(/^application\/json/);
      const body = (await response.json()) as { error: Record<string, unknown> };
      expect(body.error).to.include({ type: "authentication_error", code: "invalid_api_key", param: null });
      expect(body.error.message).to.be.a("string").and.not.empty;
    }
    const models = await fetch(`${gateway.baseUrl}/v1/models`);
    expect(models.status).to.equal(401);
    expect(agent.calls).to.have.length(0);
  });

  it("lists the caller's models with their capabilities in OpenAI's shape", async () => {
    const response = await fetch(`${gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${aliceKey}` } });
    expect(response.status).to.equal(200);
    const body = (await response.json()) as { object: string; data: Record<string, unknown>[] };
    expect(body.object).to.equal("list");
    expect(body.data).to.have.length(2);
    const [kokoro, llama] = body.data;
    expect(llama).to.deep.include({
      id: "Llama-3",
      object: "model",
      owned_by: "alice's box",
      served_by: [{ provider: "alice's box", owner: "alice" }],
      service_type: "llm",
      input_modalities: ["text"],
      output_modalities: ["text"],
      supported_features: ["tools"],
      context_length: 8192,
    });
    expect(llama?.created).to.be.a("number").above(1_600_000_000);
    expect(kokoro).to.deep.include({
      id: "kokoro",
      service_type: "tts",
      input_modalities: ["text"],
      output_modalities: ["audio"],
      context_length: null,
    });
  });

  it("answers invalid JSON, a missing model and a bad stream flag with 400 invalid_request_error", async () => {
    const cases: [unknown, string | null][] = [
      ['{"model": "Llama-3", "messages": [', null],
      ["", null],
      ["[1,2]", null],
      [{ messages: [{ role: "user", content: "hi" }] }, "model"],
      [{ model: 42, messages: [] }, "model"],
      [{ model: "Llama-3", messages: [{ role: "user", content: "hi" }], stream: "yes" }, "stream"],
      [{ model: "Llama-3", messages: "hi" }, "messages"],
    ];
    for (const [body, param] of cases) {
      const response = await post("/v1/chat/completions", body);
      expect(response.status, JSON.stringify(body)).to.equal(400);
      const { error } = (await response.json()) as { error: Record<string, unknown> };
      expect(error.type).to.equal("invalid_request_error");
      expect(error.param, JSON.stringify(body)).to.equal(param);
    }
    expect(agent.calls).to.have.length(0);
  });

  it("answers 404 no_provider with inference.club's message for a model nobody serves", async () => {
    const response = await post("/v1/chat/completions", { model: "qwen3-8b", messages: [{ role: "user", content: "hi" }] });
    expect(response.status).to.equal(404);
    const { error } = (await response.json()) as { error: Record<string, unknown> };
    expect(error).to.include({ type: "no_provider", message: "No online provider serving model 'qwen3-8b' for this user." });
  });

  it("refuses a tts model on chat with a 4xx naming the model, and never calls the agent", async () => {
    const response = await post("/v1/chat/completions", { model: "kokoro", messages: [{ role: "user", content: "hi" }] });
    expect(response.status).to.equal(400);
    const { error } = (await response.json()) as { error: { message: string; param: string } };
    expect(error.message).to.contain("'kokoro'").and.to.contain("tts");
    expect(error.param).to.equal("model");
    expect(agent.calls).to.have.length(0);
  });

  it("matches model ids case-insensitively and sends the provider's exact name, and the body otherwise untouched", async () => {
    const raw = '{"model":"LLAMA-3","messages":[{"role":"user","content":"hi"}],"x_vendor":{"keep":true}}';
    const response = await post("/v1/chat/completions", raw, aliceKey, { "x-request-id": "req-123" });
    expect(response.status).to.equal(200);
    expect(response.headers.get("x-request-id")).to.equal("req-123");
    const call = agent.calls[0];
    expect(call?.model).to.equal("Llama-3");
    expect(call?.operation).to.equal(Operation.CHAT_COMPLETION);
    expect(call?.requestId).to.equal("req-123");
    expect(call?.caller?.userName).to.equal("alice");
    expect(JSON.parse(new TextDecoder().decode(call?.body))).to.deep.equal({ ...JSON.parse(raw), model: "Llama-3" });

    const exact = '{"model":"Llama-3",  "messages":[{"role":"user","content":"hi"}]}';
    await (await post("/v1/chat/completions", exact)).arrayBuffer();
    expect(new TextDecoder().decode(agent.calls[1]?.body), "bytes untouched when the name matches").to.equal(exact);
  });

  it("returns a non-streamed answer byte for byte with the provider's status and content type", async () => {
    const answer = '{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hé"}}]}';
    agent.script = jsonAnswer(answer);
    const response = await post("/v1/chat/completions", { model: "Llama-3", messages: [{ role: "user", content: "hi" }] });
    expect(response.status).to.equal(200);
    expect(response.headers.get("content-type")).to.equal("application/json; charset=utf-8");
    expect(response.headers.get("x-request-id")).to.match(/^[0-9a-f-]{36}$/);
    expect(await response.text()).to.equal(answer);
  });

  it("streams each event as the provider emitted it, with SSE headers", async () => {
    const events = ['{"choices":[{"delta":{"content":"a"}}]}', '{"choices":[{"delta":{"content":"b\\nc"}}]}', "[DONE]"];
    agent.script = eventStream(events);
    const response = await post("/v1/chat/completions", { model: "Llama-3", messages: [{ role: "user", content: "hi" }], stream: true });
    expect(response.status).to.equal(200);
    expect(response.headers.get("content-type")).to.equal("text/event-stream; charset=utf-8");
    expect(response.headers.get("cache-control")).to.equal("no-cache");
    expect(response.headers.get("x-accel-buffering")).to.equal("no");
    expect(await response.text()).to.equal(events.map((e) => `data: ${e}\n\n`).join(""));
  });

  it("asks a stream for usage on the client's behalf, and hides that chunk from a client that did not ask", async () => {
    const usageChunk = '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}';
    agent.script = eventStream(['{"choices":[{"delta":{"content":"a"}}]}', usageChunk, "[DONE]"]);
    const plain = await post("/v1/chat/completions", { model: "Llama-3", messages: [{ role: "user", content: "hi" }], stream: true });
    expect(await plain.text()).to.equal('data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n');
    const sent = JSON.parse(new TextDecoder().decode(agent.calls.at(-1)?.body)) as Record<string, unknown>;
    expect(sent.stream_options).to.deep.equal({ include_usage: true });

    const asked = '{"model":"Llama-3","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}';
    const withUsage = await post("/v1/chat/completions", asked);
    expect(await withUsage.text()).to.contain(`data: ${usageChunk}\n\n`);
    expect(new TextDecoder().decode(agent.calls.at(-1)?.body), "untouched when the client asked").to.equal(asked);
  });

  it("ends a stream that fails after its first byte with one error frame", async () => {
    agent.script = eventStream(['{"n":1}'], async function* () {
      yield { part: { part: { case: "error", value: { type: "upstream_error", message: "model crashed", httpStatus: 502 } } } };
    });
    const response = await post("/v1/completions", { model: "Llama-3", prompt: "hi", stream: true });
    const text = await response.text();
    expect(text).to.equal(
      'data: {"n":1}\n\ndata: {"error":{"message":"model crashed","type":"upstream_error","param":null,"code":null}}\n\n',
    );
  });

  it("answers a failure before the first byte with its real status: 502 upstream_error, 504 timeout", async () => {
    agent.script = async function* () {
      yield { part: { part: { case: "error", value: { type: "upstream_error", message: "connection refused", httpStatus: 502 } } } };
    };
    const response = await post("/v1/chat/completions", { model: "Llama-3", messages: [{ role: "user", content: "hi" }], stream: true });
    expect(response.status).to.equal(502);
    expect(await response.json()).to.deep.equal({
      error: { message: "connection refused", type: "upstream_error", param: null, code: null },
    });

    agent.script = async function* (_call, signal) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    };
    const slow = await startGateway(registry.address, { requestTimeoutMs: 200 });
    try {
      await waitFor("provider", () => slow.gateway.table.provider("alice-agent"));
      const timedOut = await fetch(`${slow.baseUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${aliceKey}` },
        body: JSON.stringify({ model: "Llama-3", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(timedOut.status).to.equal(504);
      expect(((await timedOut.json()) as { error: { type: string } }).error.type).to.equal("timeout");
    } finally {
      await slow.stop();
    }
  });

  it("writes keep-alive comments while the provider is silent", async () => {
    agent.script = eventStream(['{"first":true}'], async function* () {
      await new Promise((resolve) => setTimeout(resolve, 200));
      yield { part: { part: { case: "event", value: { data: encode("[DONE]") } } } };
    });
    const response = await post("/v1/completions", { model: "Llama-3", prompt: "hi", stream: true });
    const text = await response.text();
    const opening = 'data: {"first":true}\n\n: keep-alive\n\n';
    expect(text.slice(0, opening.length)).to.equal(opening);
    expect(text.slice(-"data: [DONE]\n\n".length)).to.equal("data: [DONE]\n\n");
  });

  it("cancels the agent call when the client goes away mid-stream", async () => {
    agent.cancelled.length = 0;
    agent.script = eventStream(['{"n":1}'], async function* (_call, signal) {
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    });
    const response = await post("/v1/completions", { model: "Llama-3", prompt: "hi", stream: true }, aliceKey, {
      "x-request-id": "will-abort",
    });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    // Cancelling the body is how a fetch client leaves mid-stream: undici closes the connection.
    await reader.cancel();
    await waitFor("the agent to see the cancellation", () => agent.cancelled.includes("will-abort"), 1_000);
  });

  it("serves InferenceService to a stock gRPC client with an API key, and refuses one without", async () => {
    agent.script = eventStream(['{"x":1}', "[DONE]"]);
    const client = stockClient("InferenceService", gateway.grpcAddress);
    const parts: Record<string, unknown>[] = [];
    const call = (client.infer as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<{ part: Record<string, unknown> }>).call(
      client,
      {
        call: {
          operation: "OPERATION_COMPLETION",
          model: "llama-3",
          stream: true,
          body: Buffer.from('{"model":"llama-3","prompt":"hi","stream":true}'),
        },
      },
      bearer(aliceKey),
    );
    await new Promise<void>((resolve, reject) => {
      call.on("data", (message) => parts.push(message.part));
      call.on("end", resolve);
      call.on("error", reject);
    });
    expect(parts.map((p) => p.part)).to.deep.equal(["head", "event", "event"]);
    const event = parts[1]?.event as { data: Buffer } | undefined;
    expect(event?.data.toString()).to.equal('{"x":1}');
    expect(JSON.parse(new TextDecoder().decode(agent.calls.at(-1)?.body)).model).to.equal("Llama-3");

    const refused = (client.infer as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<unknown>).call(
      client,
      { call: { operation: "OPERATION_COMPLETION", model: "llama-3" } },
      bearer("nope"),
    );
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      refused.on("error", () => {});
      refused.on("status", resolve);
    });
    expect(status.code).to.equal(grpc.status.UNAUTHENTICATED);
    client.close();
  });

  it("stops accepting a revoked key within 5 s", async () => {
    const key = await registry.keyFor("alice");
    const ok = await fetch(`${gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(ok.status).to.equal(200);
    await registry.store.revokeApiKey(key.split("_")[1] as string);
    const revokedAt = Date.now();
    await waitFor(
      "a 401 for the revoked key",
      async () => (await fetch(`${gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status === 401,
      5_000,
      50,
    );
    expect(Date.now() - revokedAt).to.be.below(5_000);
  });

  it("counts requests, latency and tokens in /metrics without unbounded labels", async () => {
    agent.script = jsonAnswer("{}");
    await (await post("/v1/chat/completions", { model: "Llama-3", messages: [{ role: "user", content: "hi" }] })).text();
    await (await post("/v1/chat/completions", { model: "random-name-1", messages: [{ role: "user", content: "hi" }] })).text();
    const text = await (await fetch(`${gateway.baseUrl}/metrics`)).text();
    expect(text).to.match(/infermesh_gateway_requests_total\{route="\/v1\/chat\/completions",model="Llama-3",status_class="2xx"\} \d+/);
    expect(text).to.match(/infermesh_gateway_tokens_total\{operation="chat_completion",model="Llama-3",type="output"\} \d+/);
    expect(text).to.match(/infermesh_gateway_time_to_first_token_seconds_count\{operation="chat_completion",model="Llama-3"\} \d+/);
    expect(text).to.match(/infermesh_gateway_request_duration_seconds_count\{operation="chat_completion"\} \d+/);
    expect(text).not.to.contain("random-name-1");
  });

  it("counts the agents' links open on it in /metrics", async () => {
    const links = async () => /^infermesh_gateway_agent_links (\d+)$/m.exec(await (await fetch(`${gateway.baseUrl}/metrics`)).text())?.[1];
    expect({ open: gateway.gateway.links.size, metric: await links() }).to.deep.equal({ open: 1, metric: "1" });
  });

  it("answers unknown routes with a 404 envelope", async () => {
    const response = await fetch(`${gateway.baseUrl}/v1/nope`, { headers: { authorization: `Bearer ${aliceKey}` } });
    expect(response.status).to.equal(404);
    expect(((await response.json()) as { error: { type: string } }).error.type).to.equal("invalid_request_error");
  });
});
