import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Metadata } from "@grpc/grpc-js";
import { expect } from "chai";
import type { LightMyRequestResponse } from "fastify";
import { ServiceType } from "../../gen/infermesh/v1/capabilities_pb.js";
import {
  ErrorKind,
  type InferenceCall,
  type InferencePart,
  InferencePartSchema,
  InferenceServiceInferRequestSchema,
  MediaRole,
  Operation,
} from "../../gen/infermesh/v1/inference_pb.js";
import { Visibility } from "../../gen/infermesh/v1/registry_pb.js";
import type { CallContext } from "../shared/grpc/server.js";
import { echoed } from "./gateway-errors.js";
import type { Guardrails } from "./guardrails.js";
import { ALICE_KEY, createInMemoryGateway, type InMemoryGateway, type ProviderInit } from "./test-support/in-memory-gateway.js";

// The routes of issue 15 through the gateway's whole request path (auth, schemas, guardrails, routing by service type
// and protocol feature, dispatch, answer writing, usage), in memory: scripted agents answer, fastify.inject asks.

/** PartInit is one part as written in a script: which case, and its value. */
type PartInit = NonNullable<Exclude<MessageInitShape<typeof InferencePartSchema>, InferencePart>["part"]>;
const part = (init: PartInit) => create(InferencePartSchema, { part: init });
const head = (contentType = "application/json", status = 200) => part({ case: "head", value: { status, contentType } });
const data = (text: string) => part({ case: "data", value: Buffer.from(text) });
const event = (text: string, name = "") => part({ case: "event", value: { data: Buffer.from(text), event: name } });
const trailer = (promptTokens = 0, completionTokens = 0) =>
  part({ case: "trailer", value: { usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens } } });
const errorPart = (kind: ErrorKind, httpStatus: number, type: string, message: string, code = "") =>
  part({ case: "error", value: { kind, httpStatus, type, message, code } });

/** AgentScript answers one call to a provider. */
type AgentScript = (call: InferenceCall) => readonly InferencePart[];

/** jsonAnswer answers every call with one JSON body and its usage. */
const jsonAnswer =
  (body: string, status = 200, contentType = "application/json"): AgentScript =>
  () => [head(contentType, status), data(body), trailer(3, 5)];

/** ScriptedAgents answers each provider's calls by the current script, and records them. */
class ScriptedAgents {
  script: AgentScript = jsonAnswer('{"ok":true}');
  readonly calls: { readonly provider: string; readonly call: InferenceCall }[] = [];

  infer(provider: { readonly id: string }, call: InferenceCall): AsyncIterable<InferencePart> {
    this.calls.push({ provider: provider.id, call });
    const parts = this.script(call);
    return (async function* () {
      yield* parts;
    })();
  }

  reachable(): boolean {
    return true;
  }
}

const REQUEST_ID = "req-protocols-1";

const alicesBox: ProviderInit = {
  id: "p-alice",
  name: "alices-box",
  ownerUserId: "u-alice",
  ownerUserName: "alice",
  online: true,
  gatewayId: "gateway-1",
  models: [
    { id: "Llama-3", serviceType: ServiceType.LLM, supportedFeatures: ["tools"] },
    { id: "qwen", serviceType: ServiceType.LLM, supportedFeatures: ["responses", "messages", "count_tokens"] },
    { id: "chatty", serviceType: ServiceType.LLM, supportedFeatures: ["messages"] },
    { id: "nomic-embed", serviceType: ServiceType.EMBEDDING },
    { id: "bge-rerank", serviceType: ServiceType.RERANK },
    { id: "org/Model:Q4", serviceType: ServiceType.LLM },
    { id: "whisper", serviceType: ServiceType.STT },
  ],
};
const bobsGpu: ProviderInit = {
  id: "p-bob",
  name: "bobs-gpu",
  ownerUserId: "u-bob",
  ownerUserName: "bob",
  online: true,
  gatewayId: "gateway-1",
  sharing: { visibility: Visibility.PUBLIC },
  models: [{ id: "bobs-model", serviceType: ServiceType.LLM }],
};
const carolsSecret: ProviderInit = {
  id: "p-carol",
  name: "carols-box",
  ownerUserId: "u-carol",
  ownerUserName: "carol",
  online: true,
  gatewayId: "gateway-1",
  sharing: { visibility: Visibility.PRIVATE },
  models: [{ id: "secret", serviceType: ServiceType.LLM }],
};

/** GUARDRAILS are small, so that tests can cross them with small bodies. */
const GUARDRAILS: Guardrails = { maxMessages: 3, maxInputChars: 100, maxTokens: 64 };
const BODY_LIMIT_BYTES = 64 * 1024;

/** Stack is the gateway's request path over scripted agents, with the usage it records and its metrics. */
interface Stack extends InMemoryGateway {
  readonly agents: ScriptedAgents;
}

function stack(providers: readonly ProviderInit[] = [alicesBox, bobsGpu, carolsSecret]): Stack {
  const agents = new ScriptedAgents();
  const gateway = createInMemoryGateway({
    providers,
    agents,
    failureThreshold: 1,
    cooldownMs: 60_000,
    failoverAttempts: 1,
    bodyLimitBytes: BODY_LIMIT_BYTES,
    guardrails: GUARDRAILS,
  });
  return { ...gateway, agents };
}

const bearer = { authorization: `Bearer ${ALICE_KEY}` };
const json = { "content-type": "application/json", "x-request-id": REQUEST_ID };

function post(s: Stack, url: string, body: unknown, headers: Record<string, string> = bearer): Promise<LightMyRequestResponse> {
  return s.app.inject({
    method: "POST",
    url,
    headers: { ...json, ...headers },
    payload: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** refusalsOf sends each request and lists the `[param, code]` of the error each is refused with. */
function refusalsOf<T>(requests: readonly T[], send: (request: T) => Promise<LightMyRequestResponse>): Promise<unknown[]> {
  return Promise.all(
    requests.map(async (request) => {
      const error = (await send(request)).json().error;
      return [error.param, error.code];
    }),
  );
}

/** sentBody is the body the provider got, as text. */
const sentBody = (s: Stack, index = 0) => Buffer.from(s.agents.calls[index]?.call.body ?? []).toString();

/** answer is what a client reads: the status, the content type, and the body (parsed when it is JSON). */
function answer(response: LightMyRequestResponse): { status: number; type: string; body: unknown } {
  const type = String(response.headers["content-type"] ?? "");
  return {
    status: response.statusCode,
    type: type.split(";")[0] ?? "",
    body: type.startsWith("application/json") ? response.json() : response.body,
  };
}

const openAIError = (status: number, message: string, type: string, param: string | null, code: string | null) => ({
  status,
  type: "application/json",
  body: { error: { message, type, param, code } },
});
const anthropicError = (status: number, type: string, message: string) => ({
  status,
  type: "application/json",
  body: { type: "error", error: { type, message }, request_id: REQUEST_ID },
});

const CHAT_ONLY_RESPONSES =
  "Model 'Llama-3' is served by no provider whose server speaks the Responses API (POST /v1/responses); its servers serve chat " +
  "completions: use /v1/chat/completions";

describe("the protocol routes: model retrieval, embeddings, rerank, responses, Anthropic's messages, translations", () => {
  describe("GET /v1/models/{model}", () => {
    const get = (s: Stack, path: string, headers: Record<string, string> = bearer) => s.app.inject({ method: "GET", url: path, headers });

    it("answers the entry /v1/models lists, for ids with '/' and ':' in them, sent as they are or encoded, in any case", async () => {
      const s = stack();
      const list = (await get(s, "/v1/models")).json() as { data: { id: string }[] };
      const listed = list.data.find((model) => model.id === "org/Model:Q4");
      expect(listed).to.include({ id: "org/Model:Q4", service_type: "llm" });
      for (const path of ["/v1/models/org/Model:Q4", "/v1/models/org%2FModel%3AQ4", "/v1/models/ORG/model:q4"]) {
        expect(answer(await get(s, path)), path).to.deep.equal({ status: 200, type: "application/json", body: listed });
      }
      const qwen = list.data.find((model) => model.id === "qwen");
      expect(answer(await get(s, "/v1/models/qwen"))).to.deep.equal({ status: 200, type: "application/json", body: qwen });
    });

    it("answers a model shared with the caller, and OpenAI's 404 for one nobody serves or one the caller may not use", async () => {
      const s = stack();
      expect((await get(s, "/v1/models/bobs-model")).json()).to.deep.include({
        id: "bobs-model",
        owned_by: "bobs-gpu",
        served_by: [{ provider: "bobs-gpu", owner: "bob" }],
      });
      for (const model of ["secret", "no-such-model", "org/nope", "m".repeat(300)]) {
        expect(answer(await get(s, `/v1/models/${model}`)), model).to.deep.equal(
          openAIError(
            404,
            `The model '${echoed(model)}' does not exist or you do not have access to it.`,
            "invalid_request_error",
            "model",
            "model_not_found",
          ),
        );
      }
    });

    it("lists embedding and rerank models by their type's name, reading text and writing no content modality", async () => {
      const s = stack();
      const entries = await Promise.all(["nomic-embed", "bge-rerank"].map(async (id) => (await get(s, `/v1/models/${id}`)).json()));
      expect(entries.map((e) => [e.id, e.service_type, e.input_modalities, e.output_modalities])).to.deep.equal([
        ["nomic-embed", "embedding", ["text"], []],
        ["bge-rerank", "rerank", ["text"], []],
      ]);
    });

    it("needs the caller's key", async () => {
      const s = stack();
      const response = await get(s, "/v1/models/qwen", {});
      expect(response.statusCode).to.equal(401);
      expect(response.json().error.code).to.equal("invalid_api_key");
    });
  });

  describe("POST /v1/embeddings and /v1/rerank", () => {
    it("sends the client's very bytes to an embedding model and its answer back untouched", async () => {
      const s = stack();
      s.agents.script = jsonAnswer(
        '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1]}],"model":"nomic-embed"}',
      );
      const body = '{ "model": "nomic-embed",   "input": ["a", "b"], "encoding_format": "float", "extra": {"x": 1} }';
      const response = await post(s, "/v1/embeddings", body);
      expect(response.statusCode).to.equal(200);
      expect(response.body).to.equal(
        '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1]}],"model":"nomic-embed"}',
      );
      expect(sentBody(s)).to.equal(body);
      expect(s.agents.calls[0]?.call).to.deep.include({ operation: Operation.EMBEDDING, model: "nomic-embed", stream: false });
    });

    it("takes every shape of input OpenAI does, and refuses what is not one with the field's 400", async () => {
      const s = stack();
      for (const input of ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]]) {
        expect((await post(s, "/v1/embeddings", { model: "nomic-embed", input })).statusCode, JSON.stringify(input)).to.equal(200);
      }
      const refusals = await refusalsOf(
        [
          { model: "nomic-embed" },
          { model: "nomic-embed", input: [] },
          { model: "nomic-embed", input: "" },
          { model: "nomic-embed", input: 42 },
          { model: "nomic-embed", input: [{ text: "a" }] },
          { model: "nomic-embed", input: "a", encoding_format: "int8" },
          { model: "nomic-embed", input: "a", dimensions: 0 },
          { input: "a" },
        ],
        (body) => post(s, "/v1/embeddings", body),
      );
      expect(refusals).to.deep.equal([
        ["input", "missing_required_parameter"],
        ["input", "empty_array"],
        ["input", "missing_required_parameter"],
        ["input", "invalid_type"],
        ["input[0]", "invalid_type"],
        ["encoding_format", "invalid_value"],
        ["dimensions", "invalid_value"],
        ["model", "missing_required_parameter"],
      ]);
      expect(s.agents.calls).to.have.length(4);
    });

    it("routes by service type both ways, in the words of the existing 400", async () => {
      const s = stack();
      const chat = await post(s, "/v1/chat/completions", { model: "nomic-embed", messages: [{ role: "user", content: "hi" }] });
      expect(answer(chat)).to.deep.equal(
        openAIError(
          400,
          "Model 'nomic-embed' is an embedding model; /v1/chat/completions needs an llm model.",
          "invalid_request_error",
          "model",
          "model_not_supported",
        ),
      );
      const embed = await post(s, "/v1/embeddings", { model: "Llama-3", input: "hi" });
      expect(embed.json().error.message).to.equal("Model 'Llama-3' is an llm model; /v1/embeddings needs an embedding model.");
      const rerank = await post(s, "/v1/rerank", { model: "nomic-embed", query: "q", documents: ["d"] });
      expect(rerank.json().error.message).to.equal("Model 'nomic-embed' is an embedding model; /v1/rerank needs a rerank model.");
      expect(s.agents.calls).to.have.length(0);
    });

    it("reranks strings and documents with a text, and refuses an empty list, a document without text and a bad top_n", async () => {
      const s = stack();
      s.agents.script = jsonAnswer('{"results":[{"index":1,"relevance_score":0.9}]}');
      const ok = await post(s, "/v1/rerank", { model: "bge-rerank", query: "q", documents: ["a", { text: "b" }], top_n: 1 });
      expect([ok.statusCode, ok.body]).to.deep.equal([200, '{"results":[{"index":1,"relevance_score":0.9}]}']);
      expect(s.agents.calls[0]?.call.operation).to.equal(Operation.RERANK);
      const refusals = await refusalsOf(
        [
          { model: "bge-rerank", query: "q", documents: [] },
          { model: "bge-rerank", query: "q", documents: [{ title: "b" }] },
          { model: "bge-rerank", query: "q" },
          { model: "bge-rerank", documents: ["a"] },
          { model: "bge-rerank", query: 1, documents: ["a"] },
          { model: "bge-rerank", query: "q", documents: ["a"], top_n: 0 },
        ],
        (body) => post(s, "/v1/rerank", body),
      );
      expect(refusals).to.deep.equal([
        ["documents", "empty_array"],
        ["documents[0].text", "missing_required_parameter"],
        ["documents", "missing_required_parameter"],
        ["query", "missing_required_parameter"],
        ["query", "invalid_type"],
        ["top_n", "invalid_value"],
      ]);
    });

    it("bounds their input by the guardrails: 413 past the characters allowed", async () => {
      const s = stack();
      const embed = await post(s, "/v1/embeddings", { model: "nomic-embed", input: ["a".repeat(60), "b".repeat(41)] });
      expect(answer(embed)).to.deep.equal(
        openAIError(413, "The input has 101 characters; at most 100 are allowed.", "invalid_request_error", "input", "request_too_large"),
      );
      const rerank = await post(s, "/v1/rerank", { model: "bge-rerank", query: "q".repeat(50), documents: [{ text: "d".repeat(51) }] });
      expect(rerank.json().error).to.include({ param: "documents", code: "request_too_large" });
      expect(s.agents.calls).to.have.length(0);
    });
  });

  describe("POST /v1/responses", () => {
    it("routes only to a model whose providers speak the Responses API, else 400 unsupported_endpoint", async () => {
      const s = stack();
      const refused = await post(s, "/v1/responses", { model: "Llama-3", input: "hi" });
      expect(answer(refused)).to.deep.equal(
        openAIError(400, CHAT_ONLY_RESPONSES, "invalid_request_error", "model", "unsupported_endpoint"),
      );
      // A model of another type is still the wrong type, and one nobody serves still has no provider.
      expect((await post(s, "/v1/responses", { model: "nomic-embed", input: "hi" })).json().error.code).to.equal("model_not_supported");
      expect((await post(s, "/v1/responses", { model: "gpt-nope", input: "hi" })).json().error.code).to.equal("model_not_served");
      expect(s.agents.calls).to.have.length(0);
      const body = '{"model":"QWEN","input":[{"role":"user","content":"hi"}],"store":false}';
      expect((await post(s, "/v1/responses", body)).statusCode).to.equal(200);
      expect(s.agents.calls[0]?.call).to.deep.include({ operation: Operation.RESPONSE, model: "qwen" });
      expect(JSON.parse(sentBody(s))).to.deep.equal({ model: "qwen", input: [{ role: "user", content: "hi" }], store: false });
    });

    it("relays a stream's named events as the provider emitted them, and records the usage of its trailer", async () => {
      const s = stack();
      s.agents.script = () => [
        head("text/event-stream"),
        event('{"type":"response.created"}', "response.created"),
        event('{"type":"response.output_text.delta","delta":"Hi"}', "response.output_text.delta"),
        event('{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":1}}}', "response.completed"),
        trailer(4, 1),
      ];
      const response = await post(s, "/v1/responses", { model: "qwen", input: "hi", stream: true });
      expect([response.statusCode, response.headers["content-type"]]).to.deep.equal([200, "text/event-stream; charset=utf-8"]);
      expect(response.body).to.equal(
        'event: response.created\ndata: {"type":"response.created"}\n\n' +
          'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hi"}\n\n' +
          'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":1}}}\n\n',
      );
      // The Responses API reports usage unasked: the client's body goes as it was, with no stream_options added.
      expect(sentBody(s)).to.equal('{"model":"qwen","input":"hi","stream":true}');
      const [record] = await s.records();
      expect(record).to.deep.include({ operation: "response", model: "qwen", status: 200, promptTokens: 4, completionTokens: 1 });
    });

    it("requires an input unless the request continues a stored response, a conversation or a prompt", async () => {
      const s = stack();
      const missing = (await post(s, "/v1/responses", { model: "qwen" })).json().error;
      expect(missing).to.deep.equal({
        message: "'input' is required: it must be a string or an array.",
        type: "invalid_request_error",
        param: "input",
        code: "missing_required_parameter",
      });
      expect((await post(s, "/v1/responses", { model: "qwen", previous_response_id: 7 })).json().error.param).to.equal("input");
      for (const body of [
        { model: "qwen", previous_response_id: "resp_1" },
        { model: "qwen", conversation: "conv_1" },
        { model: "qwen", prompt: { id: "pmpt_1" } },
      ]) {
        expect((await post(s, "/v1/responses", body)).statusCode, JSON.stringify(body)).to.equal(200);
      }
      expect((await post(s, "/v1/responses", { model: "qwen", input: 3 })).json().error).to.include({
        param: "input",
        code: "invalid_type",
      });
      expect((await post(s, "/v1/responses", { model: "qwen", input: "x", stream: "yes" })).json().error.param).to.equal("stream");
    });

    it("clamps max_output_tokens to the ceiling and bounds the input items and characters", async () => {
      const s = stack();
      expect((await post(s, "/v1/responses", { model: "qwen", input: "hi", max_output_tokens: 1000 })).statusCode).to.equal(200);
      expect(JSON.parse(sentBody(s))).to.deep.equal({ model: "qwen", input: "hi", max_output_tokens: 64 });
      const items = Array.from({ length: 4 }, () => ({ role: "user", content: "hi" }));
      expect((await post(s, "/v1/responses", { model: "qwen", input: items })).json().error).to.deep.equal({
        message: "The request has 4 input items; at most 3 are allowed.",
        type: "invalid_request_error",
        param: "input",
        code: "request_too_large",
      });
      const long = [{ role: "user", content: [{ type: "input_text", text: "x".repeat(90) }] }];
      const tooLong = await post(s, "/v1/responses", { model: "qwen", instructions: "y".repeat(11), input: long });
      expect(tooLong.json().error.message).to.equal("The input has 101 characters; at most 100 are allowed.");
    });

    it("passes the agent's unsupported_endpoint on as a 400, trying no other provider and counting nothing against this one", async () => {
      const twin: ProviderInit = { ...alicesBox, id: "p-alice-2", name: "alices-other-box" };
      const s = stack([alicesBox, twin]);
      s.agents.script = () => [
        errorPart(
          ErrorKind.UPSTREAM,
          400,
          "invalid_request_error",
          "The model server at this provider does not serve POST /v1/responses.",
          "unsupported_endpoint",
        ),
      ];
      const response = await post(s, "/v1/responses", { model: "qwen", input: "hi" });
      expect(answer(response)).to.deep.equal(
        openAIError(
          400,
          "The model server at this provider does not serve POST /v1/responses.",
          "invalid_request_error",
          null,
          "unsupported_endpoint",
        ),
      );
      expect(s.agents.calls).to.have.length(1);
      const called = s.agents.calls[0]?.provider as string;
      // The breaker opens at the first failure here: a refusal is not one.
      expect(s.health.available(called)).to.equal(true);
    });
  });

  describe("Anthropic's POST /v1/messages and /v1/messages/count_tokens", () => {
    const messages = { model: "qwen", max_tokens: 16, messages: [{ role: "user", content: "hi" }] };
    const xApiKey = { "x-api-key": ALICE_KEY };

    it("takes the key in x-api-key or as a bearer token, and answers a missing or bad one with Anthropic's 401", async () => {
      const s = stack();
      expect((await post(s, "/v1/messages", messages, xApiKey)).statusCode).to.equal(200);
      expect((await post(s, "/v1/messages", messages, bearer)).statusCode).to.equal(200);
      expect((await post(s, "/v1/messages/count_tokens", { model: "qwen", messages: messages.messages }, xApiKey)).statusCode).to.equal(
        200,
      );
      expect(s.agents.calls.map((c) => c.call.operation)).to.deep.equal([Operation.MESSAGE, Operation.MESSAGE, Operation.COUNT_TOKENS]);
      for (const headers of [{}, { "x-api-key": "" }]) {
        expect(answer(await post(s, "/v1/messages", messages, headers)), JSON.stringify(headers)).to.deep.equal(
          anthropicError(
            401,
            "authentication_error",
            "You didn't provide an API key. Provide it as 'x-api-key: YOUR_KEY' or 'Authorization: Bearer YOUR_KEY'.",
          ),
        );
      }
      // x-api-key comes first: a good bearer token beside a bad x-api-key does not make up for it.
      for (const headers of [{ "x-api-key": "sk-wrong" }, { authorization: "Bearer sk-wrong" }, { "x-api-key": "sk-wrong", ...bearer }]) {
        expect(answer(await post(s, "/v1/messages", messages, headers)), JSON.stringify(headers)).to.deep.equal(
          anthropicError(401, "authentication_error", "Incorrect API key provided."),
        );
      }
      // x-api-key is Anthropic's: the OpenAI routes take a bearer token only, as before.
      const chat = await post(s, "/v1/chat/completions", { model: "qwen", messages: messages.messages }, xApiKey);
      expect([chat.statusCode, chat.json().error.code]).to.deep.equal([401, "invalid_api_key"]);
    });

    it("answers the gateway's own refusals in Anthropic's envelope: bad JSON, a bad field, no provider, a wrong route, a big body", async () => {
      const s = stack();
      const cases = [
        [await post(s, "/v1/messages", "{", xApiKey), 400, "invalid_request_error"],
        [await post(s, "/v1/messages", { ...messages, messages: [] }, xApiKey), 400, "invalid_request_error"],
        [await post(s, "/v1/messages", { ...messages, max_tokens: 0 }, xApiKey), 400, "invalid_request_error"],
        [await post(s, "/v1/messages", { ...messages, model: "gpt-nope" }, xApiKey), 404, "not_found_error"],
        [await post(s, "/v1/messages", { ...messages, model: "nomic-embed" }, xApiKey), 400, "invalid_request_error"],
        [await post(s, "/v1/messages/count_tokens", { model: "qwen" }, xApiKey), 400, "invalid_request_error"],
        [await s.app.inject({ method: "GET", url: "/v1/messages", headers: { ...xApiKey, ...json } }), 404, "not_found_error"],
        [await s.app.inject({ method: "POST", url: "/v1/messages/batches", headers: { ...xApiKey, ...json } }), 404, "not_found_error"],
        [await post(s, "/v1/messages", { ...messages, pad: "p".repeat(BODY_LIMIT_BYTES) }, xApiKey), 413, "request_too_large"],
        [
          await post(s, "/v1/messages", { ...messages, messages: [{ role: "user", content: "c".repeat(101) }] }, xApiKey),
          413,
          "request_too_large",
        ],
      ] as const;
      expect(
        cases.map(([response]) => {
          const body = response.json();
          return [
            response.statusCode,
            body.type,
            body.error.type,
            Object.keys(body).join(),
            Object.keys(body.error).join(),
            body.request_id,
          ];
        }),
      ).to.deep.equal(cases.map(([, status, type]) => [status, "error", type, "type,error,request_id", "type,message", REQUEST_ID]));
      expect(cases[1][0].json().error.message).to.equal("'messages' must not be empty.");
      expect(cases[3][0].json().error.message).to.equal("No online provider serving model 'gpt-nope' for this user.");
      expect(s.agents.calls).to.have.length(0);
    });

    it("routes only to a model whose providers speak the protocol, else a 400 that names it", async () => {
      const s = stack();
      expect(answer(await post(s, "/v1/messages", { ...messages, model: "Llama-3" }, xApiKey))).to.deep.equal(
        anthropicError(
          400,
          "invalid_request_error",
          "Model 'Llama-3' is served by no provider whose server speaks the Anthropic Messages API (POST /v1/messages); its " +
            "servers serve chat completions: use /v1/chat/completions",
        ),
      );
      const count = await post(s, "/v1/messages/count_tokens", { model: "chatty", messages: messages.messages }, xApiKey);
      expect(count.json().error.message).to.equal(
        "Model 'chatty' is served by no provider whose server speaks Anthropic's token counting (POST /v1/messages/count_tokens); " +
          "its servers serve chat completions: use /v1/chat/completions",
      );
      expect((await post(s, "/v1/messages", { ...messages, model: "chatty" }, xApiKey)).statusCode).to.equal(200);
    });

    it("passes the client's bytes on, without max_tokens too, and lowers a max_tokens over the ceiling", async () => {
      const s = stack();
      const body = '{"model":"qwen",  "messages":[{"role":"user","content":"hi"}], "system":[{"type":"text","text":"be brief"}]}';
      expect((await post(s, "/v1/messages", body, xApiKey)).statusCode).to.equal(200);
      expect(sentBody(s)).to.equal(body);
      expect((await post(s, "/v1/messages", { ...messages, max_tokens: 4096 }, xApiKey)).statusCode).to.equal(200);
      expect(JSON.parse(sentBody(s, 1))).to.deep.equal({ ...messages, max_tokens: 64 });
    });

    it("relays Anthropic's named events, and ends a stream that fails after its first byte with Anthropic's error event", async () => {
      const s = stack();
      s.agents.script = () => [
        head("text/event-stream"),
        event('{"type":"message_start","message":{"id":"msg_1"}}', "message_start"),
        event('{"type":"ping"}', "ping"),
        errorPart(ErrorKind.UPSTREAM, 502, "upstream_error", "the model server closed the connection"),
      ];
      const response = await post(s, "/v1/messages", { ...messages, stream: true }, xApiKey);
      expect(response.statusCode).to.equal(200);
      expect(response.body).to.equal(
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n' +
          'event: ping\ndata: {"type":"ping"}\n\n' +
          'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"the model server closed the connection"}}\n\n',
      );
    });

    it("answers an agent's error part before the answer in Anthropic's envelope, with the part's status", async () => {
      const s = stack();
      s.agents.script = () => [
        errorPart(ErrorKind.UPSTREAM, 400, "invalid_request_error", "This server does not serve /v1/messages.", "unsupported_endpoint"),
      ];
      expect(answer(await post(s, "/v1/messages", messages, xApiKey))).to.deep.equal(
        anthropicError(400, "invalid_request_error", "This server does not serve /v1/messages."),
      );
      s.agents.script = () => [errorPart(ErrorKind.TIMEOUT, 504, "timeout", "The model server did not answer in time.")];
      expect(answer(await post(s, "/v1/messages", messages, xApiKey))).to.deep.equal(
        anthropicError(504, "api_error", "The model server did not answer in time."),
      );
    });

    it("rewrites a provider's own error answer into Anthropic's envelope, and passes one already in it untouched", async () => {
      const s = stack();
      s.agents.script = jsonAnswer('{"error":{"code":400,"message":"the prompt is too long","type":"invalid_request_error"}}', 400);
      expect(answer(await post(s, "/v1/messages", messages, xApiKey))).to.deep.equal(
        anthropicError(400, "invalid_request_error", "the prompt is too long"),
      );
      s.agents.script = jsonAnswer('{"error":"model is loading"}', 503);
      expect(answer(await post(s, "/v1/messages", messages, xApiKey))).to.deep.equal(
        anthropicError(503, "overloaded_error", "model is loading"),
      );
      s.agents.script = jsonAnswer("Internal Server Error", 500, "text/plain");
      expect(answer(await post(s, "/v1/messages", messages, xApiKey))).to.deep.equal(
        anthropicError(500, "api_error", "Internal Server Error"),
      );
      const anthropics = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011"}';
      s.agents.script = jsonAnswer(anthropics, 529);
      const relayed = await post(s, "/v1/messages", messages, xApiKey);
      expect([relayed.statusCode, relayed.body]).to.deep.equal([529, anthropics]);
      // The OpenAI routes relay a provider's error answer as it came, as they always have.
      s.agents.script = jsonAnswer('{"error":{"code":400,"message":"the prompt is too long","type":"invalid_request_error"}}', 400);
      const chat = await post(s, "/v1/chat/completions", { model: "qwen", messages: messages.messages });
      expect([chat.statusCode, chat.body]).to.deep.equal([
        400,
        '{"error":{"code":400,"message":"the prompt is too long","type":"invalid_request_error"}}',
      ]);
    });

    it("records usage and metrics under each operation's label", async () => {
      const s = stack();
      await post(s, "/v1/messages", messages, xApiKey);
      await post(s, "/v1/messages/count_tokens", { model: "qwen", messages: messages.messages }, xApiKey);
      await post(s, "/v1/embeddings", { model: "nomic-embed", input: "a" });
      await post(s, "/v1/rerank", { model: "bge-rerank", query: "q", documents: ["a"] });
      await post(s, "/v1/messages", { ...messages, model: "Llama-3" }, xApiKey);
      expect((await s.records()).map((r) => [r.operation, r.model, r.status, r.promptTokens, r.completionTokens])).to.deep.equal([
        ["message", "qwen", 200, 3, 5],
        ["count_tokens", "qwen", 200, 3, 5],
        ["embeddings", "nomic-embed", 200, 3, 5],
        ["rerank", "bge-rerank", 200, 3, 5],
        ["message", "Llama-3", 400, 0, 0],
      ]);
      const tokens = (await s.metrics.tokens.get()).values.filter((v) => v.labels.type === "input").map((v) => v.labels.operation);
      expect(tokens.sort()).to.deep.equal(["count_tokens", "embeddings", "message", "rerank"]);
    });
  });

  describe("POST /v1/audio/translations", () => {
    const BOUNDARY = "----protocols";
    const form = (parts: readonly { name: string; filename?: string; data: string }[]) =>
      Buffer.concat([
        ...parts.map((p) =>
          Buffer.from(
            `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"\r\nContent-Type: audio/wav` : ""}\r\n\r\n${p.data}\r\n`,
          ),
        ),
        Buffer.from(`--${BOUNDARY}--\r\n`),
      ]);
    const upload = (s: Stack, parts: readonly { name: string; filename?: string; data: string }[]) =>
      s.app.inject({
        method: "POST",
        url: "/v1/audio/translations",
        headers: { ...bearer, "content-type": `multipart/form-data; boundary=${BOUNDARY}` },
        payload: form(parts),
      });
    const audio = { name: "file", filename: "a.wav", data: "RIFF....WAVE" };

    it("sends the audio as media and the text fields as JSON to a speech-to-text model", async () => {
      const s = stack();
      s.agents.script = jsonAnswer('{"text":"Hello"}');
      const response = await upload(s, [{ name: "model", data: "whisper" }, { name: "response_format", data: "json" }, audio]);
      expect([response.statusCode, response.body]).to.deep.equal([200, '{"text":"Hello"}']);
      const call = s.agents.calls[0]?.call;
      expect(call?.operation).to.equal(Operation.TRANSLATION);
      expect(JSON.parse(sentBody(s))).to.deep.equal({ model: "whisper", response_format: "json" });
      expect(call?.media.map((m) => [m.role, m.filename, Buffer.from(m.data).toString()])).to.deep.equal([
        [MediaRole.AUDIO, "a.wav", "RIFF....WAVE"],
      ]);
    });

    it("refuses a form without a file or a model, a bad response_format, and a model of another type", async () => {
      const s = stack();
      const errors = await refusalsOf(
        [
          [{ name: "model", data: "whisper" }],
          [audio],
          [{ name: "model", data: "whisper" }, { name: "response_format", data: "mp4" }, audio],
          [{ name: "model", data: "Llama-3" }, audio],
        ],
        (parts) => upload(s, parts),
      );
      expect(errors).to.deep.equal([
        ["file", "missing_file"],
        ["model", "missing_required_parameter"],
        ["response_format", "invalid_value"],
        ["model", "model_not_supported"],
      ]);
      expect(s.agents.calls).to.have.length(0);
    });
  });

  describe("InferenceService (the gRPC face)", () => {
    function context(): CallContext {
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${ALICE_KEY}`);
      return { metadata, signal: new AbortController().signal, peer: "test", method: "Infer", abort: () => {} };
    }
    const call = (operation: Operation, model: string, body: object, media: { role: MediaRole; data: Buffer }[] = []) =>
      create(InferenceServiceInferRequestSchema, { call: { operation, model, body: Buffer.from(JSON.stringify(body)), media } });

    async function outcome(s: Stack, request: ReturnType<typeof call>): Promise<string> {
      const parts: string[] = [];
      try {
        for await (const { part } of s.infer(request, context())) parts.push(part?.part?.case ?? "empty");
        return `OK ${parts.join(",")}`;
      } catch (error) {
        return error instanceof ConnectError ? `${Code[error.code]}: ${error.rawMessage}` : String(error);
      }
    }

    it("carries every new operation with the HTTP face's routing, features included", async () => {
      const s = stack();
      const audio = [{ role: MediaRole.AUDIO, data: Buffer.from("RIFF") }];
      expect([
        await outcome(s, call(Operation.EMBEDDING, "nomic-embed", { model: "nomic-embed", input: "a" })),
        await outcome(s, call(Operation.RERANK, "bge-rerank", { model: "bge-rerank", query: "q", documents: ["a"] })),
        await outcome(s, call(Operation.RESPONSE, "qwen", { model: "qwen", input: "hi" })),
        await outcome(s, call(Operation.MESSAGE, "qwen", { model: "qwen", messages: [] })),
        await outcome(s, call(Operation.COUNT_TOKENS, "qwen", { model: "qwen", messages: [] })),
        await outcome(s, call(Operation.TRANSLATION, "whisper", { model: "whisper" }, audio)),
        await outcome(s, call(Operation.RESPONSE, "Llama-3", { model: "Llama-3", input: "hi" })),
        await outcome(s, call(Operation.EMBEDDING, "Llama-3", { model: "Llama-3", input: "hi" })),
        await outcome(s, call(Operation.RERANK, "no-such-reranker", { model: "no-such-reranker" })),
      ]).to.deep.equal([
        "OK head,data,trailer",
        "OK head,data,trailer",
        "OK head,data,trailer",
        "OK head,data,trailer",
        "OK head,data,trailer",
        "OK head,data,trailer",
        `InvalidArgument: ${CHAT_ONLY_RESPONSES}`,
        "InvalidArgument: Model 'Llama-3' is an llm model; /v1/embeddings needs an embedding model.",
        "NotFound: No online provider serving rerank model 'no-such-reranker' for this user.",
      ]);
      expect(s.agents.calls.map((c) => c.call.operation)).to.deep.equal([
        Operation.EMBEDDING,
        Operation.RERANK,
        Operation.RESPONSE,
        Operation.MESSAGE,
        Operation.COUNT_TOKENS,
        Operation.TRANSLATION,
      ]);
      expect((await s.records()).map((r) => [r.operation, r.status])).to.deep.equal([
        ["embeddings", 200],
        ["rerank", 200],
        ["response", 200],
        ["message", 200],
        ["count_tokens", 200],
        ["translation", 200],
        ["response", 400],
        ["embeddings", 400],
        ["rerank", 404],
      ]);
    });

    it("passes an agent's unsupported_endpoint part on in band", async () => {
      const s = stack();
      s.agents.script = () => [errorPart(ErrorKind.UPSTREAM, 400, "invalid_request_error", "no /v1/messages here", "unsupported_endpoint")];
      expect(await outcome(s, call(Operation.MESSAGE, "qwen", { model: "qwen", messages: [] }))).to.equal("OK error");
      expect(s.agents.calls).to.have.length(1);
    });
  });
});
