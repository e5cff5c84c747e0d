import { expect } from "chai";
import OpenAI from "openai";
import type { SimulatedModel } from "./simulator.js";
import {
  EMBEDDING_DIMENSIONS,
  embeddingTokenCount,
  expectedEmbedding,
  expectedRanking,
  relevanceScore,
  rerankTokenCount,
} from "./simulator.js";
import { capture, captureHeader, captureJson, captureStatus, dig, keysOf, shapeOf } from "./test-support/llama-captures.js";
import { createSimulatorHarness, type Reply } from "./test-support/simulator-harness.js";

const MODELS: readonly SimulatedModel[] = [
  { id: "sim-llama" },
  { id: "tiny-embed", kind: "embedding" },
  { id: "sim-rerank", kind: "rerank" },
];

/** decodeFloats reads a base64 embedding: little-endian 32-bit floats. */
function decodeFloats(base64: string): number[] {
  const bytes = Buffer.from(base64, "base64");
  const floats: number[] = [];
  for (let offset = 0; offset < bytes.length; offset += 4) floats.push(bytes.readFloatLE(offset));
  return floats;
}

function norm(vector: readonly number[]): number {
  return Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
}

describe("simulator scoring routes: /v1/embeddings and /v1/rerank", () => {
  const simulators = createSimulatorHarness({ models: MODELS, timeToFirstTokenMs: 0 });
  const { start, call } = simulators;

  /** expectCaptured checks status, body and the headers a client reads against a captured exchange. */
  function expectCaptured(reply: Reply, name: string): void {
    expect([reply.status, reply.text]).to.deep.equal([captureStatus(name), capture(`${name}.body`)]);
    expect(reply.headers["content-type"]).to.equal(captureHeader(name, "Content-Type"));
    expect(reply.headers["connection"]).to.equal(captureHeader(name, "Connection"));
  }

  afterEach(() => simulators.closeStarted());
  after(() => simulators.close());

  describe("simulated embeddings", () => {
    it("are deterministic unit vectors of EMBEDDING_DIMENSIONS 32-bit floats, different for different inputs", () => {
      const vector = expectedEmbedding("hello world");
      expect(vector).to.have.length(EMBEDDING_DIMENSIONS).and.to.have.length(64);
      expect(expectedEmbedding("hello world")).to.deep.equal(vector);
      expect(expectedEmbedding("hello there")).to.not.deep.equal(vector);
      expect(norm(vector)).to.be.closeTo(1, 1e-6);
      expect(vector.every((value) => Math.fround(value) === value)).to.equal(true);
      expect([embeddingTokenCount("hello world"), embeddingTokenCount([1, 2, 3]), embeddingTokenCount(["a b", 7])]).to.deep.equal([
        2, 3, 3,
      ]);
    });
  });

  describe("/v1/embeddings", () => {
    it("embeds a list of inputs in llama-server's shape, key for key, with token usage", async () => {
      const { sim, url } = await start();
      const input = ["The quick brown fox", "jumps over the lazy dog"];
      const reply = await call(url, "/v1/embeddings", { model: "tiny-embed", input });
      expect(reply.status).to.equal(captureStatus("embeddings"));
      expect(reply.headers["content-type"]).to.equal(captureHeader("embeddings", "Content-Type"));
      expect(reply.headers["content-length"]).to.equal(String(Buffer.byteLength(reply.text)));
      const body = JSON.parse(reply.text) as unknown;
      expect(shapeOf(body)).to.deep.equal(shapeOf(captureJson("embeddings")));
      const tokens = embeddingTokenCount(input[0] ?? "") + embeddingTokenCount(input[1] ?? "");
      expect(body).to.deep.equal({
        model: "tiny-embed",
        object: "list",
        usage: { prompt_tokens: tokens, total_tokens: tokens },
        data: input.map((text, index) => ({ embedding: expectedEmbedding(text), index, object: "embedding" })),
      });
      expect((await sim.waitForRequest((entry) => entry.path === "/v1/embeddings")).body).to.deep.equal({ model: "tiny-embed", input });
    });

    it("embeds a single string, token ids, and lists of token ids as llama-server splits them", async () => {
      const { url } = await start();
      const single = JSON.parse((await call(url, "/v1/embeddings", { input: "hello world" })).text) as unknown;
      expect(shapeOf(single)).to.deep.equal(shapeOf(captureJson("embeddings_single")));
      expect(dig(single, "data", 0, "embedding")).to.deep.equal(expectedEmbedding("hello world"));
      expect(dig(single, "model"), "the served model when the request names none").to.equal("tiny-embed");
      const tokens = JSON.parse((await call(url, "/v1/embeddings", { input: [11, 22, 33] })).text) as unknown;
      expect((dig(tokens, "data") as unknown[]).map((item) => dig(item, "embedding"))).to.deep.equal([expectedEmbedding([11, 22, 33])]);
      expect(dig(tokens, "usage", "prompt_tokens")).to.equal(3);
      const lists = JSON.parse((await call(url, "/v1/embeddings", { input: [[1, 2], [3], "four five"] })).text) as unknown;
      expect((dig(lists, "data") as unknown[]).map((item) => dig(item, "embedding"))).to.deep.equal([
        expectedEmbedding([1, 2]),
        expectedEmbedding([3]),
        expectedEmbedding("four five"),
      ]);
      expect(dig(lists, "usage", "prompt_tokens")).to.equal(5);
    });

    it("answers encoding_format base64 as little-endian floats that decode to the float answer", async () => {
      const { url } = await start();
      const reply = await call(url, "/v1/embeddings", { model: "tiny-embed", input: "hello world", encoding_format: "base64" });
      const body = JSON.parse(reply.text) as unknown;
      expect(shapeOf(body)).to.deep.equal(shapeOf(captureJson("embeddings_base64")));
      expect(keysOf(dig(body, "data", 0))).to.deep.equal(["embedding", "index", "object", "encoding_format"]);
      expect(dig(body, "data", 0, "encoding_format")).to.equal("base64");
      expect(decodeFloats(dig(body, "data", 0, "embedding") as string)).to.deep.equal(expectedEmbedding("hello world"));
      const floats = JSON.parse((await call(url, "/v1/embeddings", { input: "hello world", encoding_format: "float" })).text) as unknown;
      expect(dig(floats, "data", 0, "embedding")).to.deep.equal(decodeFloats(dig(body, "data", 0, "embedding") as string));
    });

    it("is read by the official openai SDK, which asks for base64", async () => {
      const { url } = await start();
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-test", maxRetries: 0 });
      const answer = await client.embeddings.create({ model: "tiny-embed", input: ["a cat", "a dog"] });
      expect(answer.data.map((item) => item.embedding)).to.deep.equal([expectedEmbedding("a cat"), expectedEmbedding("a dog")]);
      expect(answer.usage).to.deep.equal({ prompt_tokens: 4, total_tokens: 4 });
    });

    it("answers llama-server's own shape on /embeddings and for a `content` request", async () => {
      const { url } = await start();
      const native = await call(url, "/embeddings", { input: ["a b", "c"] });
      expect(JSON.parse(native.text)).to.deep.equal([
        { index: 0, embedding: [expectedEmbedding("a b")] },
        { index: 1, embedding: [expectedEmbedding("c")] },
      ]);
      const content = await call(url, "/v1/embeddings", { content: "a b" });
      expect(JSON.parse(content.text)).to.deep.equal([{ index: 0, embedding: [expectedEmbedding("a b")] }]);
    });

    it("answers llama-server's exact 501 for a model that is not an embedding model, or when none is served", async () => {
      const { sim, url } = await start();
      expectCaptured(await call(url, "/v1/embeddings", { model: "sim-llama", input: "hi" }), "embeddings_on_chat_server");
      expectCaptured(await call(url, "/v1/embeddings", { model: "sim-rerank", input: "hi" }), "embeddings_on_chat_server");
      const chatOnly = await start({ models: [{ id: "tiny-llama" }] });
      expectCaptured(await call(chatOnly.url, "/v1/embeddings", { input: "hi" }), "embeddings_on_chat_server");
      // llama-server refuses before it reads the body.
      expectCaptured(await call(chatOnly.url, "/v1/embeddings", "{not json"), "embeddings_on_chat_server");
      expect(sim.activeGenerations).to.equal(0);
    });

    it("refuses bad input with llama-server's errors", async () => {
      const { url } = await start();
      for (const [body, status, message] of [
        [{ model: "tiny-embed" }, 400, '"input" or "content" must be provided'],
        [{ input: "" }, 400, "Input content cannot be empty"],
        [{ input: ["a", ""] }, 400, "Input content cannot be empty"],
        [{ input: "a", encoding_format: "binary" }, 400, "The format to return the embeddings in. Can be either float or base64"],
        [{ input: [{ text: "a" }] }, 500, 'element of "prompt" must be a string, an list of tokens, or a list of mixed strings & tokens'],
      ] as const) {
        const reply = await call(url, "/v1/embeddings", body);
        expect([reply.status, JSON.parse(reply.text)], message).to.deep.equal([
          status,
          { error: { code: status, message, type: status === 400 ? "invalid_request_error" : "server_error" } },
        ]);
      }
    });

    it("waits ttft_ms before answering and applies injected failures in llama-server's shape", async () => {
      const { url } = await start();
      const startedAt = performance.now();
      const paced = await call(url, "/v1/embeddings", { input: "hi", sim: { ttft_ms: 60 } });
      expect(paced.status).to.equal(200);
      expect(performance.now() - startedAt).to.be.at.least(55);
      const failed = await call(url, "/v1/embeddings", { input: "hi", sim: { fail: "status", fail_status: 503 } });
      expect([failed.status, failed.text]).to.deep.equal([
        503,
        '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}',
      ]);
      const configured = await start({ failure: { mode: "status", status: 500 } });
      expect((await call(configured.url, "/v1/embeddings", { input: "hi" })).status).to.equal(500);
      expect((await call(configured.url, "/v1/embeddings", { input: "hi", sim: { fail: "none" } })).status).to.equal(200);
    });

    it("records a client that leaves before the answer as an abort", async () => {
      const { sim, url } = await start();
      const controller = new AbortController();
      const outcome = call(url, "/v1/embeddings", { model: "tiny-embed", input: "hi", sim: { fail: "stall" } }, {}, controller.signal).then(
        () => "answered",
        () => "failed",
      );
      const seen = await sim.waitForRequest((entry) => entry.path === "/v1/embeddings", 1000);
      controller.abort();
      const aborted = await sim.waitForAbort((entry) => entry.id === seen.id, 1000);
      expect(await outcome).to.equal("failed");
      expect(aborted).to.include({ path: "/v1/embeddings", model: "tiny-embed", stream: false, tokensSent: 0 });
    });
  });

  describe("simulated reranking", () => {
    it("scores the share of the query's words a document holds, sorts by score with ties in order, and cuts to top_n", () => {
      expect(relevanceScore("Red apple", "a red, RED apple pie")).to.equal(1);
      expect(relevanceScore("red apple", "green apple")).to.equal(0.5);
      expect(relevanceScore("red apple", "banana")).to.equal(0);
      expect(relevanceScore("", "banana")).to.equal(0);
      const documents = ["banana", "green apple", "cherry", "red apple pie"];
      expect(expectedRanking("red apple", documents)).to.deep.equal([
        { index: 3, relevance_score: 1 },
        { index: 1, relevance_score: 0.5 },
        { index: 0, relevance_score: 0 },
        { index: 2, relevance_score: 0 },
      ]);
      expect(expectedRanking("red apple", documents, 2).map((ranked) => ranked.index)).to.deep.equal([3, 1]);
      expect(rerankTokenCount("red apple", ["a b c", "d"])).to.equal(2 + 3 + 2 + 1);
    });
  });

  describe("/v1/rerank", () => {
    const query = "which rivers flow through Europe";
    const documents = ["The Danube flows through Europe", "Pasta recipes", "Rivers of Europe: the Rhine and which others flow"];

    it("ranks documents by score in llama-server's shape, top_n applied, on every alias", async () => {
      const { sim, url } = await start();
      for (const path of ["/v1/rerank", "/rerank", "/v1/reranking", "/reranking"]) {
        const reply = await call(url, path, { model: "sim-rerank", query, documents, top_n: 2 });
        expect(reply.status, path).to.equal(200);
        expect(reply.headers["content-type"]).to.equal("application/json; charset=utf-8");
        const tokens = rerankTokenCount(query, documents);
        expect(JSON.parse(reply.text)).to.deep.equal({
          model: "sim-rerank",
          object: "list",
          usage: { prompt_tokens: tokens, total_tokens: tokens },
          results: expectedRanking(query, documents, 2),
        });
      }
      expect(expectedRanking(query, documents, 2).map((ranked) => ranked.index)).to.deep.equal([2, 0]);
      expect(sim.requests.map((entry) => entry.path)).to.deep.equal(["/v1/rerank", "/rerank", "/v1/reranking", "/reranking"]);
    });

    it("adds each document's text with return_documents, and answers TEI's `texts` form as a bare list", async () => {
      const { url } = await start();
      const reply = JSON.parse((await call(url, "/v1/rerank", { query, documents, return_documents: true })).text) as unknown;
      expect(dig(reply, "results")).to.deep.equal(
        expectedRanking(query, documents).map((ranked) => ({ ...ranked, document: { text: documents[ranked.index] } })),
      );
      const tei = JSON.parse((await call(url, "/rerank", { query, texts: documents, return_text: true })).text) as unknown;
      expect(tei).to.deep.equal(
        expectedRanking(query, documents).map((ranked) => ({
          index: ranked.index,
          score: ranked.relevance_score,
          text: documents[ranked.index],
        })),
      );
    });

    it("answers llama-server's exact 501 for a model that is not a rerank model", async () => {
      const { url } = await start();
      expectCaptured(await call(url, "/v1/rerank", { model: "tiny-embed", query, documents }), "rerank");
      const chatOnly = await start({ models: [{ id: "tiny-llama" }] });
      expectCaptured(await call(chatOnly.url, "/v1/rerank", { query, documents }), "rerank");
    });

    it("refuses a missing query or documents with llama-server's 400", async () => {
      const { url } = await start();
      for (const [body, message] of [
        [{ documents }, '"query" must be provided'],
        [{ query: 7, documents }, '"query" must be a string'],
        [{ query }, '"documents" must be a non-empty string array'],
        [{ query, documents: "one document" }, '"documents" must be a non-empty string array'],
        [{ query, documents: [] }, '"documents" must be a non-empty string array'],
        [{ query, documents: ["a", 2] }, '"documents" must be a non-empty string array'],
      ] as const) {
        const reply = await call(url, "/v1/rerank", body);
        expect([reply.status, JSON.parse(reply.text)], message).to.deep.equal([
          400,
          { error: { code: 400, message, type: "invalid_request_error" } },
        ]);
      }
    });
  });
});
