import Anthropic from "@anthropic-ai/sdk";
import type * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import OpenAI, { toFile } from "openai";
import { expectedTranscription, expectedTranslation, testWav } from "../services/sim/simulator.js";
import { type Mesh, type MeshAgent, startMesh } from "./support/mesh-fixture.js";
import { bearer, stockClient } from "./support/stock-grpc-client.js";
import { waitFor } from "./support/wait-for.js";

// The routes local model servers speak besides chat, end to end with the official clients (openai, and Anthropic's
// own SDK for Messages): gateway -> agent -> simulator, the simulator answering as llama-server does. Each agent is
// configured the way a user would for a real server: `--upstream llm=URL`, nothing said about embeddings, rerank or
// protocols; what each model serves is what the agent found out.

/** ModelEntry is a /v1/models entry, with the fields this test reads. */
interface ModelEntry {
  readonly id: string;
  readonly service_type: string;
  readonly supported_features: readonly string[];
  readonly output_modalities: readonly string[];
}

/** UsageRow is a /api/usage row grouped by model. */
interface UsageRow {
  readonly model: string;
  readonly requests: number;
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
}

describe("the whole surface local servers speak, through the mesh with the official clients", function () {
  this.timeout(60_000);
  let mesh: Mesh;
  let aliceKey: string;
  let bobKey: string;
  let openai: OpenAI;
  let anthropic: Anthropic;
  let chat: MeshAgent;
  let embed: MeshAgent;
  let rerank: MeshAgent;

  before(async () => {
    mesh = await startMesh();
    aliceKey = await mesh.registry.keyFor("alice");
    bobKey = await mesh.registry.keyFor("bob");
    // llama-server as started plain, with --embeddings, with --reranking, and an older build without the newer routes.
    chat = await mesh.addAgent({ user: "alice", apiKey: aliceKey, type: "llm", sim: { models: [{ id: "sim-llama" }] } });
    embed = await mesh.addAgent({
      user: "alice",
      apiKey: aliceKey,
      type: "llm",
      sim: { models: [{ id: "sim-embed", kind: "embedding" }] },
    });
    rerank = await mesh.addAgent({ user: "alice", apiKey: aliceKey, type: "llm", sim: { models: [{ id: "sim-ranker", kind: "rerank" }] } });
    await mesh.addAgent({ user: "alice", apiKey: aliceKey, type: "llm", sim: { models: [{ id: "old-llama" }], legacyRoutes: true } });
    await mesh.addAgent({ user: "alice", apiKey: aliceKey, type: "stt", sim: { models: [{ id: "sim-whisper", kind: "stt" }] } });
    openai = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: aliceKey, maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: mesh.gateway.baseUrl, apiKey: aliceKey, maxRetries: 0 });
  });

  after(() => mesh?.stop());

  async function models(key = aliceKey): Promise<ModelEntry[]> {
    const response = await fetch(`${mesh.gateway.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    return ((await response.json()) as { data: ModelEntry[] }).data;
  }

  describe("what each model serves, found out by the agent", () => {
    it("lists an embeddings server's model as embedding and a reranking server's as rerank, with no output modality", async () => {
      const byId = new Map((await models()).map((entry) => [entry.id, entry]));
      expect(byId.get("sim-embed")?.service_type).to.equal("embedding");
      expect(byId.get("sim-ranker")?.service_type).to.equal("rerank");
      expect(byId.get("sim-embed")?.output_modalities).to.deep.equal([]);
      expect(byId.get("sim-llama")?.service_type).to.equal("llm");
    });

    it("says which protocols each llm model's server speaks: all three for a current llama-server, none for an older one", async () => {
      const byId = new Map((await models()).map((entry) => [entry.id, entry]));
      expect(byId.get("sim-llama")?.supported_features).to.include.members(["responses", "messages", "count_tokens"]);
      expect(byId.get("old-llama")?.supported_features).to.not.include.members(["responses"]);
      expect(byId.get("old-llama")?.supported_features ?? []).to.have.length(0);
    });

    it("retrieves a model the caller can reach, and answers 404 model_not_found for one they cannot", async () => {
      const model = await openai.models.retrieve("sim-embed");
      expect(model.id).to.equal("sim-embed");
      expect((model as unknown as ModelEntry).service_type).to.equal("embedding");
      const bob = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: bobKey, maxRetries: 0 });
      const refused = await bob.models.retrieve("sim-embed").catch((error: unknown) => error);
      expect(refused).to.be.instanceOf(OpenAI.NotFoundError);
      expect((refused as InstanceType<typeof OpenAI.NotFoundError>).code).to.equal("model_not_found");
      expect((refused as Error).message).to.include("sim-embed");
    });
  });

  describe("embeddings", () => {
    it("passes the answer through untouched: the SDK's base64 request decodes to the vectors the server gives as floats", async () => {
      const input = ["the lighthouse", "a boat at night"];
      const direct = await fetch(`${embed.simulator.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-embed", input }),
      });
      const expected = (await direct.json()) as { data: { embedding: number[] }[]; usage: { prompt_tokens: number } };
      // The SDK asks for base64 unless told otherwise, and decodes it.
      const viaSdk = await openai.embeddings.create({ model: "sim-embed", input });
      expect(viaSdk.data.map((item) => item.embedding.map((x) => Math.fround(x)))).to.deep.equal(
        expected.data.map((item) => item.embedding.map((x) => Math.fround(x))),
      );
      expect(viaSdk.usage.prompt_tokens).to.equal(expected.usage.prompt_tokens);
      const floats = await openai.embeddings.create({ model: "sim-embed", input: "the lighthouse", encoding_format: "float" });
      expect(floats.data[0]?.embedding).to.deep.equal(expected.data[0]?.embedding);
      const seen = embed.simulator.requests.filter((request) => request.path === "/v1/embeddings").at(-1);
      expect(seen?.body).to.deep.equal({ model: "sim-embed", input: "the lighthouse", encoding_format: "float" });
    });

    it("refuses chat on an embedding model, and embeddings on a chat model, with a 400 naming the model", async () => {
      const chatOnEmbed = await openai.chat.completions
        .create({ model: "sim-embed", messages: [{ role: "user", content: "hi" }] })
        .catch((error: unknown) => error);
      expect(chatOnEmbed).to.be.instanceOf(OpenAI.BadRequestError);
      expect((chatOnEmbed as Error).message).to.match(/sim-embed.*embedding model/);
      const embedOnChat = await openai.embeddings.create({ model: "sim-llama", input: "x" }).catch((error: unknown) => error);
      expect(embedOnChat).to.be.instanceOf(OpenAI.BadRequestError);
      expect((embedOnChat as Error).message).to.match(/sim-llama.*llm model/);
      expect(embed.simulator.requests.some((request) => request.path === "/v1/chat/completions")).to.equal(false);
    });
  });

  describe("rerank", () => {
    it("ranks documents against the query on the rerank model only", async () => {
      const response = await fetch(`${mesh.gateway.baseUrl}/v1/rerank`, {
        method: "POST",
        headers: { authorization: `Bearer ${aliceKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "sim-ranker",
          query: "lighthouse at night",
          documents: ["a recipe for soup", "the lighthouse shone at night", "night trains"],
          top_n: 2,
        }),
      });
      const body = (await response.json()) as { results: { index: number; relevance_score: number }[]; usage: { prompt_tokens: number } };
      expect(response.status, JSON.stringify(body)).to.equal(200);
      expect(body.results).to.have.length(2);
      expect(body.results[0]?.index).to.equal(1);
      expect(body.results[0]?.relevance_score).to.be.greaterThan(body.results[1]?.relevance_score ?? 1);
      expect(body.usage.prompt_tokens).to.be.greaterThan(0);
      expect(rerank.simulator.requests.at(-1)?.path).to.equal("/v1/rerank");
    });
  });

  describe("responses", () => {
    it("answers a Responses call, and streams its named events as the server sent them", async () => {
      const response = await openai.responses.create({ model: "sim-llama", input: "Say hello", max_output_tokens: 5 });
      expect(response.object).to.equal("response");
      expect(response.output_text.length).to.be.greaterThan(0);
      expect(response.usage?.output_tokens).to.equal(5);

      const types: string[] = [];
      let text = "";
      const stream = await openai.responses.create({ model: "sim-llama", input: "Say hello", max_output_tokens: 4, stream: true });
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === "response.output_text.delta") text += event.delta;
        if (event.type === "response.completed") expect(event.response.output_text ?? text).to.equal(text);
      }
      expect(types[0]).to.equal("response.created");
      expect(types.at(-1)).to.equal("response.completed");
      expect(types.filter((type) => type === "response.output_text.delta")).to.have.length(4);
    });

    it("keeps each event's name on the wire: an event line before its data line", async () => {
      const response = await fetch(`${mesh.gateway.baseUrl}/v1/responses`, {
        method: "POST",
        headers: { authorization: `Bearer ${aliceKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "sim-llama", input: "hi", max_output_tokens: 2, stream: true }),
      });
      const raw = await response.text();
      expect(response.headers.get("content-type")).to.match(/^text\/event-stream/);
      const names = [...raw.matchAll(/^event: (.+)\ndata: \{"type":"([^"]+)"/gm)];
      expect(names.length).to.be.greaterThan(4);
      for (const [, name, type] of names) expect(name).to.equal(type);
    });

    it("reaches only the providers of a model whose server speaks it; chat still reaches them all", async () => {
      const current = await mesh.addAgent({ user: "alice", apiKey: aliceKey, type: "llm", sim: { models: [{ id: "twin" }] } });
      const older = await mesh.addAgent({
        user: "alice",
        apiKey: aliceKey,
        type: "llm",
        sim: { models: [{ id: "twin" }], legacyRoutes: true },
      });
      for (let i = 0; i < 6; i++) {
        await openai.responses.create({ model: "twin", input: "hi", max_output_tokens: 1 });
        await openai.chat.completions.create({ model: "twin", messages: [{ role: "user", content: "hi" }], max_tokens: 1 });
      }
      // The agent's own probes of its server (bodies without a model) are not calls.
      const paths = (agent: MeshAgent) =>
        agent.simulator.requests
          .filter((request) => (request.body as { model?: string } | undefined)?.model === "twin")
          .map((request) => request.path);
      expect(paths(current).filter((path) => path === "/v1/responses")).to.have.length(6);
      expect(paths(older)).to.not.include("/v1/responses");
      expect(paths(older).filter((path) => path === "/v1/chat/completions").length).to.be.greaterThan(0);
    });

    it("answers a clear 400 naming the model when its server has no /v1/responses, never a 404 no_provider", async () => {
      const refused = await openai.responses.create({ model: "old-llama", input: "hi" }).catch((error: unknown) => error);
      expect(refused).to.be.instanceOf(OpenAI.BadRequestError);
      expect((refused as InstanceType<typeof OpenAI.BadRequestError>).code).to.equal("unsupported_endpoint");
      expect((refused as Error).message).to.include("old-llama");
    });
  });

  describe("Anthropic Messages", () => {
    it("answers messages.create with the x-api-key the SDK sends", async () => {
      const message = await anthropic.messages.create({
        model: "sim-llama",
        max_tokens: 6,
        messages: [{ role: "user", content: "Hello" }],
      });
      expect(message.type).to.equal("message");
      expect(message.stop_reason).to.equal("max_tokens");
      expect(message.usage.output_tokens).to.equal(6);
      const block = message.content[0];
      expect(block?.type).to.equal("text");
      const seen = chat.simulator.requests.filter((request) => request.path === "/v1/messages").at(-1);
      expect(seen?.headers.authorization, "the member's key never reaches the model server").to.equal(undefined);
      expect(seen?.headers["x-api-key"]).to.equal(undefined);
    });

    it("streams a message: text deltas that add up to the final message, and its stop reason", async () => {
      const stream = anthropic.messages.stream({ model: "sim-llama", max_tokens: 5, messages: [{ role: "user", content: "Hello" }] });
      let text = "";
      stream.on("text", (delta) => {
        text += delta;
      });
      const final = await stream.finalMessage();
      const block = final.content[0];
      expect(block?.type === "text" ? block.text : undefined).to.equal(text);
      expect(text.length).to.be.greaterThan(0);
      expect(final.stop_reason).to.equal("max_tokens");
      expect(final.usage.output_tokens).to.equal(5);
    });

    it("counts tokens", async () => {
      const counted = await anthropic.messages.countTokens({ model: "sim-llama", messages: [{ role: "user", content: "Hello there" }] });
      expect(counted.input_tokens).to.be.greaterThan(0);
    });

    it("answers errors in Anthropic's envelope: a wrong key, a model nobody serves, a server without /v1/messages", async () => {
      const wrongKey = new Anthropic({ baseURL: mesh.gateway.baseUrl, apiKey: "im_wrong", maxRetries: 0 });
      const unauthenticated = await wrongKey.messages
        .create({ model: "sim-llama", max_tokens: 1, messages: [{ role: "user", content: "x" }] })
        .catch((error: unknown) => error);
      expect(unauthenticated).to.be.instanceOf(Anthropic.AuthenticationError);
      expect((unauthenticated as InstanceType<typeof Anthropic.AuthenticationError>).error).to.deep.include({ type: "error" });

      const missing = await anthropic.messages
        .create({ model: "nobody-serves-this", max_tokens: 1, messages: [{ role: "user", content: "x" }] })
        .catch((error: unknown) => error);
      expect(missing).to.be.instanceOf(Anthropic.NotFoundError);
      const envelope = (missing as InstanceType<typeof Anthropic.NotFoundError>).error as { type: string; error: { type: string } };
      expect(envelope.type).to.equal("error");
      expect(envelope.error.type).to.equal("not_found_error");

      const old = await anthropic.messages
        .create({ model: "old-llama", max_tokens: 1, messages: [{ role: "user", content: "x" }] })
        .catch((error: unknown) => error);
      expect(old).to.be.instanceOf(Anthropic.BadRequestError);
      expect((old as Error).message).to.include("old-llama");
      const oldEnvelope = (old as InstanceType<typeof Anthropic.BadRequestError>).error as { error: { type: string } };
      expect(oldEnvelope.error.type).to.equal("invalid_request_error");
    });
  });

  describe("translations", () => {
    it("translates speech beside transcriptions, on the speech-to-text model", async () => {
      const audio = testWav(1.5);
      const translation = await openai.audio.translations.create({
        model: "sim-whisper",
        file: await toFile(audio, "clip.wav", { type: "audio/wav" }),
      });
      expect(translation.text).to.equal(expectedTranslation(audio).text);
      expect(translation.text).to.not.equal(expectedTranscription(audio).text);
      const refused = await openai.audio.translations
        .create({ model: "sim-llama", file: await toFile(audio, "clip.wav", { type: "audio/wav" }) })
        .catch((error: unknown) => error);
      expect(refused).to.be.instanceOf(OpenAI.BadRequestError);
    });
  });

  describe("gRPC InferenceService", () => {
    /** StockPart is an InferencePart as @grpc/proto-loader decodes it (oneofs name their case in `part`). */
    interface StockPart {
      readonly part?: string;
      readonly head?: { status: number; contentType: string };
      readonly data?: Buffer;
      readonly event?: { data: Buffer; event: string };
      readonly trailer?: { usage?: { promptTokens: number; completionTokens: number } };
      readonly error?: { httpStatus: number; code: string; message: string };
    }

    function infer(
      operation: string,
      model: string,
      body: object,
      stream = false,
    ): Promise<{ parts: StockPart[]; status: grpc.StatusObject }> {
      const client = stockClient("InferenceService", mesh.gateway.grpcAddress);
      const parts: StockPart[] = [];
      return new Promise((resolve) => {
        const call = (client.infer as (r: object, m: grpc.Metadata) => grpc.ClientReadableStream<{ part: StockPart }>).call(
          client,
          { call: { operation, model, stream, body: Buffer.from(JSON.stringify({ model, ...body })) } },
          bearer(aliceKey),
        );
        call.on("data", (message) => parts.push(message.part));
        call.on("error", () => {});
        call.on("status", (status) => {
          client.close();
          resolve({ parts, status });
        });
      });
    }

    it("carries embeddings and a streamed Responses call, events with their names, usage in the trailer", async () => {
      const embedded = await infer("OPERATION_EMBEDDING", "sim-embed", { input: "grpc" });
      expect(embedded.status.code).to.equal(0);
      const json = JSON.parse(Buffer.concat(embedded.parts.flatMap((p) => (p.data ? [p.data] : []))).toString()) as { data: unknown[] };
      expect(json.data).to.have.length(1);
      expect(embedded.parts.at(-1)?.trailer?.usage?.promptTokens).to.be.greaterThan(0);

      const responded = await infer("OPERATION_RESPONSE", "sim-llama", { input: "grpc", max_output_tokens: 3, stream: true }, true);
      const names = responded.parts.flatMap((p) => (p.event ? [p.event.event] : []));
      expect(names[0]).to.equal("response.created");
      expect(names.at(-1)).to.equal("response.completed");
      expect(responded.parts.at(-1)?.trailer?.usage?.completionTokens).to.equal(3);
    });

    it("refuses a Messages call for a model whose server lacks /v1/messages, naming the model", async () => {
      const refused = await infer("OPERATION_MESSAGE", "old-llama", { max_tokens: 1, messages: [{ role: "user", content: "x" }] });
      expect(refused.status.code).to.equal(3); // INVALID_ARGUMENT
      expect(refused.status.details).to.include("old-llama");
    });
  });

  describe("usage", () => {
    it("records each route's tokens under its model, as the answers reported them", async () => {
      // Only calls that arrived from here on count: the earlier tests' records may still be on their way.
      const since = Date.now();
      const embedded = await openai.embeddings.create({ model: "sim-embed", input: "count me", encoding_format: "float" });
      const responded = await openai.responses.create({ model: "sim-llama", input: "count me", max_output_tokens: 3 });
      const message = await anthropic.messages.create({
        model: "sim-llama",
        max_tokens: 4,
        messages: [{ role: "user", content: "count me" }],
      });
      const streamed = await anthropic.messages
        .stream({ model: "sim-llama", max_tokens: 2, messages: [{ role: "user", content: "count me" }] })
        .finalMessage();
      const prompt = (usage: { input_tokens: number; cache_read_input_tokens?: number | null }) =>
        usage.input_tokens + (usage.cache_read_input_tokens ?? 0);
      const expected = {
        embed: { prompt: embedded.usage.prompt_tokens },
        llama: {
          prompt: (responded.usage?.input_tokens ?? 0) + prompt(message.usage) + prompt(streamed.usage),
          completion: (responded.usage?.output_tokens ?? 0) + message.usage.output_tokens + streamed.usage.output_tokens,
        },
      };
      const after = await waitFor(
        "the four calls in /api/usage",
        async () => {
          const now = await usageByModel(since);
          return now.get("sim-embed")?.requests === 1 && now.get("sim-llama")?.requests === 3 ? now : undefined;
        },
        10_000,
      );
      expect(after.get("sim-embed")?.prompt_tokens).to.equal(expected.embed.prompt);
      expect(after.get("sim-embed")?.completion_tokens).to.equal(0);
      expect(after.get("sim-llama")?.prompt_tokens).to.equal(expected.llama.prompt);
      expect(after.get("sim-llama")?.completion_tokens).to.equal(expected.llama.completion);
    });
  });

  async function usageByModel(sinceMs: number): Promise<Map<string, UsageRow>> {
    const range = `from=${encodeURIComponent(new Date(sinceMs).toISOString())}&to=${Math.ceil(Date.now() / 1000) + 60}`;
    const response = await fetch(`${mesh.gateway.baseUrl}/api/usage?${range}&scope=mine&group_by=model`, {
      headers: { authorization: `Bearer ${aliceKey}` },
    });
    const body = (await response.json()) as { data: UsageRow[] };
    expect(response.status, JSON.stringify(body)).to.equal(200);
    return new Map(body.data.map((row) => [row.model, row]));
  }
});
