import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import { MESH_TOKEN, type RegistryFixture, startRegistry } from "../../test/support/registry-fixture.js";
import { bearer, type StockClient, stockClient, unary } from "../../test/support/stock-grpc-client.js";
import { waitFor } from "../../test/support/wait-for.js";
import { type Clock, systemClock } from "../shared/clock.js";
import { createSimulator, expectedCompletionText, type Simulator } from "../sim/simulator.js";
import type { Agent } from "./agent.js";
import type { UpstreamSettings } from "./agent-config.js";
import { SseParser } from "./sse-parser.js";
import { type AgentFixture, startAgentFixture } from "./test-support/agent-fixture.js";
import {
  type FakeHandler,
  type FakeRequest,
  type FakeUpstream,
  llamaServer,
  replay,
  sampleBody,
  ssePayloads,
  startFakeUpstream,
} from "./test-support/fake-upstream.js";
import { chatBody, type InferResult, infer, openInfer, type StockPart } from "./test-support/infer-client.js";

const MODEL = "models/tiny-random.gguf";

/** stallStream opens an SSE answer with one event and then says nothing more, like a model server stuck mid-answer. */
const stallStream: FakeHandler = (_request, response) => {
  response.writeHead(200, { "content-type": "text/event-stream" });
  response.write('data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n');
};

/** stallModels answers /v1/models like llama-server and holds every other request without a word. */
function withModels(handler: FakeHandler): FakeHandler {
  const models = llamaServer();
  return (request, response) => (request.path === "/v1/models" ? models(request, response) : handler(request, response));
}

/** ListedProvider is a Provider as a stock RegistryService client decodes it, the fields these tests read. */
interface ListedProvider {
  id: string;
  endpoint: string;
  gatewayId: string;
  linkId: string;
  models: { id: string }[];
}

/** callDeadline is InferenceCall.deadline at epoch ms, in proto-loader's form. */
function callDeadline(ms: number): { seconds: string; nanos: number } {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

/** aheadBy is the system clock run aheadMs fast, as on a machine whose clock is not the gateway's. */
function aheadBy(aheadMs: number): Clock {
  return { now: () => systemClock.now() + aheadMs, setTimer: (fn, delayMs) => systemClock.setTimer(fn, delayMs) };
}

function kinds(result: InferResult): string[] {
  return result.parts.map((part) => part.part);
}

function onlyError(result: InferResult): NonNullable<StockPart["error"]> {
  expect(result.status.code, result.status.details).to.equal(grpc.status.OK);
  expect(kinds(result)).to.deep.equal(["error"]);
  return result.parts[0]?.error as NonNullable<StockPart["error"]>;
}

describe("agent Infer (stock grpc-js client)", () => {
  let registry: RegistryFixture;
  let fixture: AgentFixture | undefined;
  let upstream: FakeUpstream;
  let apiKey: string;
  let agent: Agent;
  let client: StockClient;
  let token: string;
  /** discoveryRequests counts the requests discovery made before the agent was ready. */
  let discoveryRequests = 0;

  /** calls are the requests the upstream received since the agent was ready: the calls, not discovery's questions. */
  function calls(): FakeRequest[] {
    return upstream.requests.slice(discoveryRequests);
  }

  /**
   * startAgent starts a fake llama-server and an agent of it, attached to a gateway of the registry all these tests
   * share; clock, when given, is the agent's.
   */
  async function startAgent(settings: Partial<UpstreamSettings> = {}, clock?: Clock): Promise<void> {
    upstream = await startFakeUpstream();
    fixture = await startAgentFixture({
      registry,
      upstreams: [{ type: "llm", url: upstream.url, ...settings }],
      servers: [upstream],
      settings: { metricsListen: { host: "127.0.0.1", port: 0 } },
      agent: { hostname: "test-host", ...(clock ? { clock } : {}) },
    });
    ({ apiKey, agent, client, token } = fixture);
    discoveryRequests = upstream.requests.length;
  }

  before(async () => {
    registry = await startRegistry({ heartbeatIntervalMs: 200 });
  });

  after(() => registry.stop());

  afterEach(async () => {
    await fixture?.close();
    fixture = undefined;
  });

  describe("with a llama-server replaying real captures", () => {
    beforeEach(() => startAgent());

    it("is reached at the gateway it attached to, which the registry shows to the mesh token only, never to users", async () => {
      const registryClient = stockClient("RegistryService", registry.address);
      const list = async (credential: string) =>
        (await unary<{ providers: ListedProvider[] }>(registryClient, "listProviders", {}, bearer(credential))).providers;
      try {
        const listed = await waitFor("the agent to register", async () => (await list(MESH_TOKEN))[0]);
        expect(listed.models.map((m) => m.id)).to.deep.equal([MODEL]);
        expect(listed).to.deep.include({
          id: fixture?.providerId,
          endpoint: fixture?.gateway.grpcAddress,
          gatewayId: fixture?.gateway.gateway.settings.gatewayId,
        });
        expect(listed.linkId).to.match(/^[0-9a-f-]{36}$/);
        const result = await infer(client, { model: MODEL, body: chatBody(MODEL) }, token);
        expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);

        const [own] = await list(apiKey);
        expect(own, "the owner sees the provider, not where it is attached").to.deep.include({ id: listed.id, endpoint: "", linkId: "" });
        const naming = await unary(
          registryClient,
          "heartbeat",
          { providerId: "alice-direct", name: "direct", endpoint: "10.0.0.1:50051" },
          bearer(apiKey),
        ).then(
          () => undefined,
          (error: grpc.ServiceError) => error,
        );
        expect(naming?.code, "a user may not name an endpoint for gateways to dial").to.equal(grpc.status.INVALID_ARGUMENT);
        expect(naming?.details).to.contain("endpoint, gateway_id and link_id are set by the gateway");
      } finally {
        registryClient.close();
      }
    });

    it("returns a non-streamed chat answer: head, the upstream's exact bytes, trailer with usage", async () => {
      const body = chatBody(MODEL, { temperature: 0.2, some_server_extension: { x: 1 } });
      const result = await infer(client, { model: MODEL, body, requestId: "req-42" }, token);
      expect(result.status.code).to.equal(grpc.status.OK);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(result.parts[0]?.head).to.deep.include({ status: 200, contentType: "application/json; charset=utf-8" });
      expect(result.parts[1]?.data).to.deep.equal(sampleBody("chat_nonstream"));
      expect(result.parts[2]?.trailer).to.deep.include({ finishReasons: ["length"] });
      expect(result.parts[2]?.trailer?.usage).to.deep.include({
        promptTokens: 52,
        completionTokens: 8,
        totalTokens: 60,
        cachedPromptTokens: 8,
      });
      const seen = calls().find((r) => r.method === "POST");
      expect(seen?.path).to.equal("/v1/chat/completions");
      expect(seen?.body, "the body reaches the upstream untouched").to.deep.equal(body);
      expect(seen?.headers).to.include({ "content-type": "application/json", "x-request-id": "req-42" });
      expect(seen?.headers.authorization).to.equal(undefined);
    });

    it("streams one event per SSE event, data byte for byte and [DONE] included, then the trailer", async () => {
      const result = await infer(client, { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }) }, token);
      expect(result.status.code).to.equal(grpc.status.OK);
      const expected = ssePayloads("chat_stream");
      expect(kinds(result)).to.deep.equal(["head", ...expected.map(() => "event"), "trailer"]);
      expect(result.parts[0]?.head).to.deep.include({ status: 200, contentType: "text/event-stream" });
      const events = result.parts.filter((p) => p.part === "event").map((p) => p.event?.data as Buffer);
      expect(events).to.deep.equal(expected);
      expect(events.at(-1)?.toString()).to.equal("[DONE]");
      expect(result.parts.at(-1)?.trailer).to.deep.include({ finishReasons: ["length"], usage: null });
    });

    it("fills the trailer's usage from a stream's usage chunk, for chat and for completions", async () => {
      upstream.handler = withModels((request, response) =>
        replay(response, request.path === "/v1/completions" ? "completions_stream" : "chat_stream_usage", 5),
      );
      const chat = await infer(client, { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }) }, token);
      expect(chat.parts.at(-1)?.trailer?.usage).to.deep.include({
        promptTokens: 31,
        completionTokens: 5,
        totalTokens: 36,
        cachedPromptTokens: 30,
      });
      const completion = await infer(
        client,
        {
          operation: "OPERATION_COMPLETION",
          model: MODEL,
          stream: true,
          body: Buffer.from(JSON.stringify({ model: MODEL, prompt: "hi", stream: true })),
        },
        token,
      );
      expect(upstream.requests.at(-1)?.path).to.equal("/v1/completions");
      expect(completion.parts.filter((p) => p.part === "event")).to.have.length(ssePayloads("completions_stream").length);
      expect(completion.parts.at(-1)?.trailer).to.deep.include({ finishReasons: ["length"] });
      expect(completion.parts.at(-1)?.trailer?.usage).to.deep.include({ promptTokens: 5, completionTokens: 4 });
    });

    it("is called through the gateway's AgentService, which refuses callers without the mesh token, the user's API key included", async () => {
      for (const credential of [undefined, apiKey, `${token.slice(0, -2)}xx`, ""]) {
        const result = await infer(client, { model: MODEL, body: chatBody(MODEL) }, credential);
        expect(result.status.code, String(credential)).to.equal(grpc.status.UNAUTHENTICATED);
        expect(result.status.details).to.equal("AgentService takes the mesh token: it serves the mesh's gateways only");
        expect(result.parts).to.deep.equal([]);
      }
      expect(calls()).to.deep.equal([]);
    });

    it("matches the model case-insensitively, answers NOT_FOUND for a model it lacks or lacks with the operation's type", async () => {
      const result = await infer(client, { model: MODEL.toUpperCase(), body: chatBody(MODEL) }, token);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      const missing = await infer(client, { model: "gpt-5", body: chatBody("gpt-5") }, token);
      expect(missing.status.code).to.equal(grpc.status.NOT_FOUND);
      expect(missing.status.details).to.contain("gpt-5");
      const audio = await infer(client, { operation: "OPERATION_TRANSCRIPTION", model: MODEL, body: Buffer.from("{}") }, token);
      expect(audio.status.code, "an llm model never serves a transcription").to.equal(grpc.status.NOT_FOUND);
      expect(audio.status.details).to.equal(`no stt upstream of this agent serves model '${MODEL}'`);
      const unspecified = await infer(client, { operation: "OPERATION_UNSPECIFIED", model: MODEL, body: chatBody(MODEL) }, token);
      expect(unspecified.status.code).to.equal(grpc.status.UNIMPLEMENTED);
      expect(calls()).to.have.length(1);
    });

    it("passes an upstream 4xx through as the upstream's own answer", async () => {
      upstream.handler = withModels((_request, response) => replay(response, "err_ctx_exceeded"));
      const result = await infer(client, { model: MODEL, body: chatBody(MODEL) }, token);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(result.parts[0]?.head).to.deep.include({ status: 400, contentType: "application/json; charset=utf-8" });
      expect(result.parts[1]?.data).to.deep.equal(sampleBody("err_ctx_exceeded"));
    });

    it("turns an upstream 500 into one upstream_error part naming the status and the upstream's message", async () => {
      upstream.handler = withModels((_request, response) => {
        response.writeHead(500, { "content-type": "application/json" });
        response.end('{"error":{"code":500,"message":"CUDA out of memory","type":"server_error"}}');
      });
      const error = onlyError(await infer(client, { model: MODEL, body: chatBody(MODEL) }, token));
      expect(error).to.deep.include({ kind: "ERROR_KIND_UPSTREAM", type: "upstream_error", httpStatus: 502 });
      expect(error.message).to.contain("HTTP 500").and.to.contain("CUDA out of memory");
    });

    it("turns a refused connection into one upstream_error part", async () => {
      await upstream.close();
      const error = onlyError(await infer(client, { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }) }, token));
      expect(error).to.deep.include({ kind: "ERROR_KIND_UPSTREAM", type: "upstream_error", httpStatus: 502 });
      expect(error.message).to.equal("cannot connect to the local llm server: connection refused (is the server running?)");
      expect(error.message, "a provider's private address never reaches clients").not.to.contain("127.0.0.1");
    });

    it("turns a 200 answer that is not JSON into one upstream_error part", async () => {
      upstream.handler = withModels((_request, response) => {
        response.writeHead(200, { "content-type": "text/html" });
        response.end("<html>captive portal</html>");
      });
      const error = onlyError(await infer(client, { model: MODEL, body: chatBody(MODEL) }, token));
      expect(error.message).to.contain("not JSON").and.to.contain("text/html").and.to.contain("captive portal");
    });

    it("ends a stream that breaks mid-way with one upstream_error part after the events received", async () => {
      upstream.handler = withModels((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" });
        response.write('data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n"', () => response.socket?.destroy());
      });
      const result = await infer(client, { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }) }, token);
      expect(result.status.code).to.equal(grpc.status.OK);
      expect(kinds(result)).to.deep.equal(["head", "event", "event", "error"]);
      expect(result.parts[3]?.error).to.deep.include({ kind: "ERROR_KIND_UPSTREAM", type: "upstream_error", httpStatus: 502 });
      expect(result.parts[3]?.error?.message).to.contain("after 2 events");
    });

    it("ends a call at its passed call deadline with DEADLINE_EXCEEDED after the parts relayed, and aborts the upstream request", async () => {
      upstream.handler = withModels(stallStream);
      const deadline = callDeadline(Date.now() + 300);
      const result = await infer(client, { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }), deadline }, token);
      expect(result.status.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      expect(result.status.details).to.equal("the call's deadline passed");
      expect(kinds(result)).to.deep.equal(["head", "event"]);
      await waitFor("the upstream to see the abort", () => upstream.aborted.length === 1, 1_000);
    });

    it("aborts the upstream request when the gRPC call's own deadline passes", async () => {
      upstream.handler = withModels(() => {});
      const result = await infer(client, { model: MODEL, body: chatBody(MODEL) }, token, { deadline: Date.now() + 300 });
      expect(result.status.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      await waitFor("the upstream to see the abort", () => upstream.aborted.length === 1, 1_000);
    });

    it("counts calls by operation and outcome on /metrics, and its heartbeats on the link", async () => {
      await infer(client, { model: MODEL, body: chatBody(MODEL) }, token);
      await infer(client, { model: "nope", body: chatBody("nope") }, token);
      const refused = await infer(client, { model: MODEL, body: chatBody(MODEL) }, undefined);
      expect(refused.status.code, "refused at the gateway, never reaching the agent").to.equal(grpc.status.UNAUTHENTICATED);
      const { metrics } = await agent.listen();
      const text = await (await fetch(`http://127.0.0.1:${metrics?.port}/metrics`)).text();
      expect(text).to.contain('infermesh_agent_requests_total{operation="chat_completion",outcome="ok"} 1');
      expect(text).to.contain('infermesh_agent_requests_total{operation="chat_completion",outcome="not_found"} 1');
      expect(text).not.to.contain('outcome="unauthenticated"');
      expect(text).to.match(/infermesh_agent_heartbeats_total\{outcome="ok"\} [1-9]/);
      expect(text).not.to.contain('infermesh_agent_heartbeats_total{outcome="failed"}');
      expect(text).to.match(/infermesh_agent_requests_in_flight 0/);
      expect(text).to.match(/infermesh_agent_requests_queued 0/);
      expect(text).to.match(/infermesh_agent_upstream_headers_seconds_count\{operation="chat_completion"\} 1/);
      expect(text).to.match(/infermesh_agent_models_advertised 1/);
    });
  });

  describe("with llama-servers for chat, for embeddings, and of an older build", () => {
    let chat: FakeUpstream;
    let embed: FakeUpstream;
    let older: FakeUpstream;
    const OLD_MODEL = "old-model";

    /** namedEvents are a captured stream's events as [event name, data]. */
    function namedEvents(sample: string): [string, string][] {
      return new SseParser().push(sampleBody(sample)).map((e) => [e.event, Buffer.from(e.data).toString("utf8")]);
    }

    function json(value: unknown): Buffer {
      return Buffer.from(JSON.stringify(value));
    }

    beforeEach(async () => {
      chat = await startFakeUpstream(llamaServer("chat"));
      embed = await startFakeUpstream(llamaServer("embeddings"));
      const build = llamaServer("older");
      older = await startFakeUpstream((request, response) => {
        if (request.path !== "/v1/models") return build(request, response);
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ object: "list", data: [{ id: OLD_MODEL, object: "model", owned_by: "llamacpp" }] }));
      });
      fixture = await startAgentFixture({
        registry,
        upstreams: [chat, embed, older].map((server) => ({ type: "llm" as const, url: server.url })),
        servers: [chat, embed, older],
      });
      ({ agent, client, token } = fixture);
    });

    it("advertises the embedding model as one, and the protocols each server was found to serve", () => {
      expect(agent.models().map((m) => [m.id, m.serviceType, m.supportedFeatures])).to.deep.equal([
        [MODEL, ServiceType.LLM, ["responses", "messages", "count_tokens"]],
        ["tiny-embed", ServiceType.EMBEDDING, []],
        [OLD_MODEL, ServiceType.LLM, []],
      ]);
    });

    it("serves embeddings to the embedding model on /v1/embeddings, the body untouched, and no chat model", async () => {
      const body = json({ model: "tiny-embed", input: "hello" });
      const result = await infer(client, { operation: "OPERATION_EMBEDDING", model: "tiny-embed", body }, token);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      expect(result.parts[1]?.data).to.deep.equal(sampleBody("embeddings_single"));
      expect(result.parts[2]?.trailer).to.deep.equal({
        usage: {
          promptTokens: 4,
          completionTokens: 0,
          totalTokens: 4,
          cachedPromptTokens: 0,
          reasoningTokens: 0,
          audioSeconds: 0,
          images: 0,
        },
        finishReasons: [],
      });
      expect(embed.requests.at(-1)).to.deep.include({ method: "POST", path: "/v1/embeddings", body });
      const chatModel = await infer(client, { operation: "OPERATION_EMBEDDING", model: MODEL, body }, token);
      expect(chatModel.status.code).to.equal(grpc.status.NOT_FOUND);
      expect(chatModel.status.details).to.equal(`no embedding upstream of this agent serves model '${MODEL}'`);
    });

    it("streams a response's named events as sent, and answers messages and count_tokens, each on its own route", async () => {
      const responses = await infer(
        client,
        { operation: "OPERATION_RESPONSE", model: MODEL, stream: true, body: json({ model: MODEL, input: "hi", stream: true }) },
        token,
      );
      const events = responses.parts.filter((p) => p.part === "event").map((p) => [p.event?.event, p.event?.data.toString("utf8")]);
      expect(events).to.deep.equal(namedEvents("responses_stream"));
      expect(responses.parts.at(-1)?.trailer).to.deep.include({ finishReasons: ["stop"] });
      expect(responses.parts.at(-1)?.trailer?.usage).to.deep.include({ promptTokens: 18, completionTokens: 6, cachedPromptTokens: 17 });

      const messageBody = json({ model: MODEL, max_tokens: 12, messages: [{ role: "user", content: "hi" }] });
      const message = await infer(client, { operation: "OPERATION_MESSAGE", model: MODEL, body: messageBody }, token);
      expect(kinds(message)).to.deep.equal(["head", "data", "trailer"]);
      expect(message.parts[1]?.data).to.deep.equal(sampleBody("messages"));
      expect(message.parts[2]?.trailer).to.deep.include({ finishReasons: ["length"] });
      expect(message.parts[2]?.trailer?.usage).to.deep.include({ promptTokens: 18, completionTokens: 12, cachedPromptTokens: 17 });

      const counted = await infer(client, { operation: "OPERATION_COUNT_TOKENS", model: MODEL, body: messageBody }, token);
      expect(counted.parts[1]?.data).to.deep.equal(sampleBody("messages_count_tokens"));
      expect(counted.parts[2]?.trailer).to.deep.equal({ usage: null, finishReasons: [] });
      expect(chat.requests.slice(-3).map((r) => r.path)).to.deep.equal(["/v1/responses", "/v1/messages", "/v1/messages/count_tokens"]);
    });

    it("answers a route the older server lacks with the client's unsupported_endpoint error, not its 404", async () => {
      const body = json({ model: OLD_MODEL, input: "hi" });
      const result = await infer(client, { operation: "OPERATION_RESPONSE", model: OLD_MODEL, body }, token);
      expect(onlyError(result)).to.deep.equal({
        kind: "ERROR_KIND_UNSPECIFIED",
        type: "invalid_request_error",
        httpStatus: 400,
        code: "unsupported_endpoint",
        param: "model",
        message: `Model '${OLD_MODEL}' is served by a server that does not serve POST /v1/responses (it answered HTTP 404)`,
      });
      expect(older.requests.at(-1)).to.deep.include({ method: "POST", path: "/v1/responses", body });
    });
  });

  describe("with an agent whose clock runs ahead of the gateway's", () => {
    beforeEach(() => startAgent({}, aheadBy(500)));

    it("answers a call deadline that passed by its own clock with a timeout part, and aborts the upstream request", async () => {
      upstream.handler = withModels(stallStream);
      const deadline = callDeadline(Date.now() + 800);
      const result = await infer(client, { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }), deadline }, token);
      expect(result.status.code, result.status.details).to.equal(grpc.status.OK);
      expect(kinds(result)).to.deep.equal(["head", "event", "error"]);
      expect(result.parts[2]?.error).to.deep.include({ kind: "ERROR_KIND_TIMEOUT", type: "timeout", httpStatus: 504 });
      await waitFor("the upstream to see the abort", () => upstream.aborted.length === 1, 1_000);
    });
  });

  describe("with an upstream that requires its own API key", () => {
    beforeEach(() => startAgent({ apiKey: "upstream-secret" }));

    it("sends the upstream's key as a Bearer token, for discovery and for inference", async () => {
      const result = await infer(client, { model: MODEL, body: chatBody(MODEL) }, token);
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      const seen = upstream.requests.map((r) => [r.method, r.path, r.headers.authorization]);
      expect(seen[0], "discovery").to.deep.equal(["GET", "/v1/models", "Bearer upstream-secret"]);
      expect(seen.at(-1), "inference").to.deep.equal(["POST", "/v1/chat/completions", "Bearer upstream-secret"]);
      expect(
        seen.filter(([, , authorization]) => authorization !== "Bearer upstream-secret"),
        "every probe carries the key too",
      ).to.deep.equal([]);
    });
  });

  describe("with one slot and a queue of one", () => {
    beforeEach(async () => {
      await startAgent({ maxConcurrency: 1, maxQueue: 1 });
      upstream.handler = withModels(stallStream);
    });

    it("queues the second call, refuses the third with RESOURCE_EXHAUSTED, and drops a cancelled waiter from the queue", async () => {
      const streamed = { model: MODEL, stream: true, body: chatBody(MODEL, { stream: true }) };
      const first = openInfer(client, streamed, token);
      await waitFor("the first call to stream", () => first.parts.length >= 2);
      const second = openInfer(client, streamed, token);
      await waitFor("the second call to queue", () => agent.load().queued === 1);
      const third = await infer(client, streamed, token);
      expect(third.status.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      expect(agent.load()).to.deep.equal({ inFlight: 1, maxConcurrency: 1, queued: 1 });

      second.call.cancel();
      await waitFor("the queue to empty", () => agent.load().queued === 0);
      expect((await second.done).status.code).to.equal(grpc.status.CANCELLED);
      expect(calls(), "the cancelled waiter never reached the upstream").to.have.length(1);
      first.call.cancel();
      await waitFor("the slot to free", () => agent.load().inFlight === 0);
    });
  });
});

describe("agent Infer against the model-server simulator", () => {
  let fixture: AgentFixture;
  let simulator: Simulator;
  let agent: Agent;
  let client: StockClient;
  let token: string;

  before(async () => {
    simulator = createSimulator({ models: [{ id: "sim-llama" }], tokensPerSecond: 50, timeToFirstTokenMs: 0 });
    const { url } = await simulator.listen();
    fixture = await startAgentFixture({ user: "bob", upstreams: [{ type: "llm", url }], servers: [simulator] });
    ({ agent, client, token } = fixture);
  });

  after(() => fixture.close());

  it("relays the simulator's stream and aborts its request within 1 s of a client cancel", async () => {
    const open = openInfer(
      client,
      { model: "sim-llama", stream: true, body: chatBody("sim-llama", { stream: true, max_tokens: 500 }) },
      token,
    );
    await waitFor("a few events", () => open.parts.filter((p) => p.part === "event").length >= 3, 5_000);
    const cancelledAt = Date.now();
    open.call.cancel();
    const aborted = await simulator.waitForAbort(undefined, 1_000);
    expect(aborted.atMs - cancelledAt).to.be.below(1_000);
    expect(aborted.stream).to.equal(true);
    expect((await open.done).status.code).to.equal(grpc.status.CANCELLED);
    await waitFor("the slot to free", () => agent.load().inFlight === 0);
  });

  it("returns the simulator's non-streamed answer whole, on a kept-alive connection", async () => {
    const first = await infer(client, { model: "sim-llama", body: chatBody("sim-llama", { max_tokens: 3 }) }, token);
    const second = await infer(client, { model: "sim-llama", body: chatBody("sim-llama", { max_tokens: 3 }) }, token);
    for (const result of [first, second]) {
      expect(kinds(result)).to.deep.equal(["head", "data", "trailer"]);
      const answer = JSON.parse(String(result.parts[1]?.data)) as { choices: { message: { content: string } }[] };
      expect(answer.choices[0]?.message.content).to.equal(expectedCompletionText([{ role: "user", content: "hello" }], 3));
      expect(result.parts[2]?.trailer?.usage?.completionTokens).to.equal(3);
    }
    expect(simulator.openConnections, "discovery and inference reuse pooled connections").to.be.at.most(2);
  });
});
